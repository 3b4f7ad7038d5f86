"""Foundation-vs-SFT next-token statistics: the chunked, jitted scorer (statistics.py),
token distribution shift classes (shift.py), the run that picks prefixes and
trajectories (runner.py), alignment.json summaries (summary.py), the figures
(plots.py) and the explorer page, alignment.html (explorer.py, explorer_page.py)."""
