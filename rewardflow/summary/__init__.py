"""Stage 4, summary: the run's headline numbers with intervals (``summary.json``, ``.md``)."""
