"""The compilation-cache flag of every entry point that compiles a model (run, parity,
train); `mesh_flags.mesh_from_flags` applies it before anything compiles."""

from __future__ import annotations

from absl import flags

from pretty_jax.core import compilation_cache

HELP_TITLE = "compilation cache"  # the group --help lists these flags under

_COMPILATION_CACHE = flags.DEFINE_bool(
    "compilation_cache", True,
    "Keep compiled programs on disk (under $XDG_CACHE_HOME/pretty_jax/jax_compilation_cache, default "
    "~/.cache/...) so a rerun does not compile again; --nocompilation_cache turns it off.",
)


def apply() -> None:
    """Turns the persistent compilation cache on unless --nocompilation_cache."""
    if _COMPILATION_CACHE.value:
        compilation_cache.enable()
