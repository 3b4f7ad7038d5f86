"""Data references: `data:<dataset>[/<path>]` where a run takes a data path (--data,
--dictionary, --lexicon_data), meaning that path in the dataset's folder of the data
cache that `python -m pretty_jax.data` fills, e.g.

    --data=data:flores101/flores101_dataset
    --dictionary=data:muse/{source_iso}-{target_iso}.txt

The cache is `$XDG_CACHE_HOME/pretty_jax/data` (`~/.cache/pretty_jax/data` without it).
Placeholders such as {target_iso} are kept for the run to fill.
"""

from __future__ import annotations

from pathlib import Path

from pretty_jax.core.cache_home import cache_dir
from pretty_jax.core.errors import UserError
from pretty_jax.datasets.catalog import CATALOG
from pretty_jax.datasets.fetch import RECORD

PREFIX = "data:"


def default_cache_dir() -> Path:
    """Where the data command keeps datasets unless told otherwise."""
    return cache_dir("data")


def resolve_data_reference(value: str, flag: str, cache: Path | None = None) -> str:
    """`value` itself, or for a `data:` reference the path it names in `cache` (default:
    `default_cache_dir()`). Refuses, naming `flag`, an unknown dataset and one that is
    not fetched yet (saying the command that fetches it)."""
    if not value.startswith(PREFIX):
        return value
    name, _, rest = value[len(PREFIX):].partition("/")
    if name not in CATALOG:
        raise UserError(f"{flag}={value}: no dataset {name!r}; the data command knows {', '.join(CATALOG)}")
    root = (cache or default_cache_dir()) / name
    if not (root / RECORD).exists():
        raise UserError(f"{flag}={value}: {name} is not in the data cache {root.parent} yet; "
                        f"fetch it with: python -m pretty_jax.data --datasets={name}")
    return str(root / rest) if rest else str(root)
