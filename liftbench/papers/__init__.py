"""Published numbers and what may be said about them: ``baselines`` (the transcribed tables),
``match`` (like-for-like settings and suite banners), ``compare`` (measured beside published), ``claims``
(the papers' claims tested on per-seed results, with ``stats`` for the intervals and ``claim_table`` for
the words). Imports only the core below it."""
