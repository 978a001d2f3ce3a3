"""Published numbers and what may be said about them: ``baselines`` (the transcribed tables),
``match`` (like-for-like settings), ``compare`` (measured beside published) and ``claims`` (the
papers' claims tested on per-seed results). Imports only the core below it."""
