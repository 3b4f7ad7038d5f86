"""Foundation-vs-SFT next-token statistics: the chunked, jitted scorer (statistics.py),
the run that picks prefixes and trajectories (runner.py), alignment.json summaries
(summary.py) and the paper's figures (plots.py)."""
