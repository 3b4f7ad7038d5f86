"""Fetches the datasets the paper's configs read into the data cache and prints the run
flags that read them.

    python -m pretty_jax.data [--datasets=flores101,muse,ud,crosssum] [--cache_dir=DIR]

Without a network it prints what to download and where to put it, and exits 2.
"""

from pathlib import Path

from absl import flags

from pretty_jax.core.errors import UserError
from pretty_jax.datasets import references
from pretty_jax.datasets.catalog import CATALOG, DEFAULT_DATASETS
from pretty_jax.datasets.fetch import Fetcher
from pretty_jax.cli import help as cli_help

_DATASETS = flags.DEFINE_list(
    "datasets", list(DEFAULT_DATASETS),
    "Comma-separated datasets to fetch: " + "; ".join(f"{d.name}: {d.title}" for d in CATALOG.values())
    + ". Default: the ones the paper's configs read.",
)
_CACHE_DIR = flags.DEFINE_string(
    "cache_dir", None,
    "Folder to keep the datasets in (created if missing; pretty_jax never replaces or removes a file there that "
    "it did not write). Default: $XDG_CACHE_HOME/pretty_jax/data, i.e. ~/.cache/pretty_jax/data.",
)
_MIRROR = flags.DEFINE_string(
    "mirror", None,
    "A URL base that serves every file at the same path as its origin (e.g. http://host/ for "
    "http://host/flores101/dataset/flores101_dataset.tar.gz); default: each file's origin.",
)


HELP = cli_help.Help(
    "python -m pretty_jax.data",
    "Fetches the datasets the paper's configs read (checksums verified, resumable) into the data cache and "
    "prints the run flags that read them. Without a network it prints what to download and where to put "
    "it, and exits 2.",
    examples=(
        "python -m pretty_jax.data",
        "python -m pretty_jax.data --datasets=flores_plus            # gated: hf auth login first",
    ),
)


def main(argv: list[str]) -> None:
    del argv
    unknown = [name for name in _DATASETS.value if name not in CATALOG]
    if unknown or not _DATASETS.value:
        raise UserError(f"--datasets={','.join(_DATASETS.value)}: give some of {', '.join(CATALOG)}")
    from huggingface_hub import get_token

    cache = references.default_cache_dir() if _CACHE_DIR.value is None else Path(_CACHE_DIR.value).expanduser()
    fetcher = Fetcher(cache, _MIRROR.value, get_token())
    try:
        lines = fetcher.fetch([CATALOG[name] for name in _DATASETS.value])
    finally:
        fetcher.close()
    print(f"\nIn {cache}; the run flags that read each dataset:")
    for line in lines:
        print(f"  {line}")
