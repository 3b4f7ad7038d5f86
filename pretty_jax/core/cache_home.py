"""Where pretty_jax keeps what it can rebuild: `$XDG_CACHE_HOME/pretty_jax/<name>`,
`~/.cache/pretty_jax/<name>` when XDG_CACHE_HOME is unset or empty (the XDG Base
Directory rule). Read when asked, not at import, so a changed environment is followed."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(name: str) -> Path:
    """The folder of one kind of cached thing, e.g. cache_dir("data")."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pretty_jax" / name
