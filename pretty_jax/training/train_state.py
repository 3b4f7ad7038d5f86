"""Saving and restoring the train state so that a killed run resumes exactly.

    OUTPUT_DIR/train_state/step_00000200/arrays.safetensors   every array of TrainState
                                        /state.json           step, data position, settings

Each save is written to a hidden temporary directory, flushed to disk, then renamed
to `step_<N>`: a rename is atomic, so `kill -9` at any moment leaves either the new
state or none of it, and every `step_*` directory is complete. Older states are
deleted only after the new one is in place; unfinished temporary directories are
removed by the next run. Everything here stays inside `train_state/`, a tree the
output directory's manifest lists as the run's own (see `run_dir`); starting over
(--overwrite) retires it whole.

The data position and the RNG need no arrays: the batch order is a pure function of
(seed, step) (see `data.BatchOrder`), and nothing else in a step is random.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from pretty_jax.core.errors import CheckpointError
from pretty_jax.engine import parallel
from pretty_jax.training.step import TrainState

STATE_DIR = "train_state"
ARRAYS_FILE = "arrays.safetensors"
INFO_FILE = "state.json"
FORMAT = "pretty_jax-train-state/1"
_STEP_DIR = re.compile(r"^step_(\d+)$")


def _named_leaves(state: TrainState) -> list[tuple[str, Any]]:
    leaves, _ = jax.tree_util.tree_flatten_with_path(state)
    return [(jax.tree_util.keystr(path), leaf) for path, leaf in leaves]


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def latest(output_dir: Path) -> Path | None:
    """The newest complete saved state, or None."""
    root = output_dir / STATE_DIR
    if not root.is_dir():
        return None
    steps = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name))]
    return max(steps)[1] if steps else None


def save(output_dir: Path, state: TrainState, info: dict[str, Any], keep: int = 1) -> Path:
    """Writes `state` and `info` (JSON) as `train_state/step_<N>` and deletes all but the
    newest `keep` states. Every process must call it (arrays are gathered); process 0
    writes."""
    host = {name: np.asarray(leaf) for name, leaf in _named_leaves(parallel.to_host(state))}
    step = int(host[".step"])
    root = output_dir / STATE_DIR
    final = root / f"step_{step:08d}"
    if jax.process_index() != 0:
        return final
    staging = root / f".tmp-step_{step:08d}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    save_file(host, str(staging / ARRAYS_FILE), metadata={"format": FORMAT})
    (staging / INFO_FILE).write_text(json.dumps({"format": FORMAT, "step": step, **info}, indent=2, allow_nan=False) + "\n")
    for path in (staging / ARRAYS_FILE, staging / INFO_FILE, staging):
        _fsync(path)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(staging, final)
    _fsync(root)
    _prune(root, keep)
    return final


def _prune(root: Path, keep: int) -> None:
    steps = sorted((int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)))
    for _, path in steps[:-keep]:
        shutil.rmtree(path, ignore_errors=True)


def remove_unfinished(output_dir: Path) -> None:
    """Deletes temporary directories that a killed save left behind."""
    root = output_dir / STATE_DIR
    if root.is_dir() and jax.process_index() == 0:
        for path in root.glob(".tmp-*"):
            shutil.rmtree(path, ignore_errors=True)


def read_info(directory: Path) -> dict[str, Any]:
    info = json.loads((directory / INFO_FILE).read_text())
    if info.get("format") != FORMAT:
        raise CheckpointError(f"{directory / INFO_FILE}: format {info.get('format')!r}, expected {FORMAT!r}")
    return info


def restore(directory: Path, template: TrainState) -> TrainState:
    """The saved state, each array placed like the corresponding `template` array
    (same sharding). Names, shapes and dtypes must match the template's."""
    path = directory / ARRAYS_FILE
    with safe_open(path, framework="np") as f:
        stored = set(f.keys())
        named = _named_leaves(template)
        problems = [f"missing {name}" for name, _ in named if name not in stored]
        problems += [f"unexpected {name}" for name in stored - {name for name, _ in named}]
        if problems:
            raise CheckpointError(f"{path} does not match this run's state:\n    " + "\n    ".join(sorted(problems)))
        leaves = [_place(path, name, f.get_tensor(name), leaf) for name, leaf in named]
    return jax.tree.unflatten(jax.tree.structure(template), leaves)


def _place(path: Path, name: str, host: np.ndarray, like: jax.Array) -> jax.Array:
    if host.shape != like.shape or host.dtype != like.dtype:
        raise CheckpointError(
            f"{path}: {name} is {host.dtype}{list(host.shape)}, this run needs {like.dtype}{list(like.shape)}"
        )
    return jax.make_array_from_callback(host.shape, like.sharding, lambda index: np.asarray(host[index]))
