"""glibc's allocator set up for XLA:CPU, by the command-line entry points.

XLA:CPU allocates each execution's scratch buffer (every intermediate of a jitted program)
anew: the demo organism's training step needs 170 MB of it, every step. glibc serves a
block that large with a fresh `mmap` in the worker thread that runs the program and
unmaps it when the step frees it, so each step faults in and zeroes ~43,000 pages again:
on 2 cores the step took 130 ms, 80 ms of it in the kernel. With one arena for every
thread, large blocks taken from the heap instead of `mmap`, and up to `KEEP_FREED` of freed
memory kept for the next step, it takes 78 ms (the demo's pretraining 57 s instead of
88 s); programs compile as fast as before (a cold-cache experiment run: 15.7 s either way,
within 5%). Outputs cannot change: the allocator only chooses where buffers lie.

Only when JAX will run on the CPU (no accelerator plugin installed, or `JAX_PLATFORMS`
naming cpu first), on glibc, and when the user has not chosen an allocator or its
settings themselves (`LD_PRELOAD`, `MALLOC_*`, `GLIBC_TUNABLES`). The settings must be made
before JAX starts its threads: each thread keeps the arena it first allocated from.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import os
import pkgutil
import platform

# mallopt(3) parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8

KEEP_FREED = 1 << 30  # bytes of freed memory at the heap's top kept rather than returned

_SETTINGS = ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, KEEP_FREED))
_USER_CHOICES = ("LD_PRELOAD", "GLIBC_TUNABLES", "MALLOC_ARENA_MAX", "MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_",
                 "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")


def set_up_for_cpu() -> bool:
    """Applies the settings above where they apply (see the module docstring); returns
    whether it did. Call before anything runs on JAX."""
    if platform.system() != "Linux" or any(name in os.environ for name in _USER_CHOICES) or not runs_on_cpu():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # glibc's; absent from musl
    except (OSError, AttributeError):
        return False
    return all(mallopt(parameter, value) == 1 for parameter, value in _SETTINGS)


def runs_on_cpu() -> bool:
    """Whether JAX will run on the CPU: `JAX_PLATFORMS` names cpu first, or it is unset
    and no accelerator plugin (CUDA, ROCm, TPU) is installed for JAX to choose."""
    chosen = os.environ.get("JAX_PLATFORMS", "").strip()
    if chosen:
        return chosen.split(",")[0].strip() == "cpu"
    return not _accelerator_plugin_installed()


def _accelerator_plugin_installed() -> bool:
    """Where JAX looks for backends besides the CPU: `jax_plugins` entry points and
    namespace modules (the CUDA and ROCm plugins), and libtpu."""
    if importlib.metadata.entry_points(group="jax_plugins") or importlib.util.find_spec("libtpu") is not None:
        return True
    try:
        import jax_plugins  # a namespace package, present only with a plugin
    except ImportError:
        return False
    return any(True for _ in pkgutil.iter_modules(jax_plugins.__path__))
