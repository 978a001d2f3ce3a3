"""Suite commands (run, noise, seqlen, status, report)."""
