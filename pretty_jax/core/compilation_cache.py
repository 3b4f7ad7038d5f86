"""JAX's persistent compilation cache: compiled programs kept on disk, so a rerun of
the same experiment (same model shapes, buckets and flags) does not compile again.

On by default under `$XDG_CACHE_HOME/pretty_jax/jax_compilation_cache` (default
`~/.cache/pretty_jax/jax_compilation_cache`); the entry points turn it off with
`--nocompilation_cache`. Entries are keyed by the program, the JAX/XLA version and the
devices, so a stale entry is never used; deleting the folder only costs compile time.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

from pretty_jax.core.cache_home import cache_dir
from pretty_jax.core.errors import UserError


def default_dir() -> Path:
    return cache_dir("jax_compilation_cache")


def enable(directory: Path | None = None) -> Path:
    """Caches every compiled program (however quick to compile) under `directory`
    (default `default_dir()`); call before the first compilation. Returns the folder."""
    directory = default_dir() if directory is None else Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if not os.access(directory, os.W_OK | os.X_OK):
            raise PermissionError(13, "not writable")
    except OSError as e:
        raise UserError(
            f"the compilation cache folder {directory} cannot be used ({e.strerror}); make it writable, set "
            "XDG_CACHE_HOME to a folder you can write, or pass --nocompilation_cache"
        ) from None
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return directory
