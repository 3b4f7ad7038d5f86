"""The data the paper's configs read, fetched into a cache: `python -m pretty_jax.data`.

catalog.py     the datasets, their files' origins, digests and cache places, the run flags
download.py    one file over HTTP: resumed, with progress, and digests
fetch.py       the cache: fetching, checking, unpacking, offline instructions
references.py  `data:<dataset>/<path>` references to the cache, for run flags
"""
