"""Saving and restoring the train state so that a killed run resumes exactly.

    OUTPUT_DIR/train_state/step_00000200/arrays.safetensors   every array of TrainState
                                        /state.json           step, data position, settings

Each file is recorded in the output directory's manifest, written to a temporary
file, flushed to disk and renamed into place (see `run_dir`); `state.json` is written
last, so a `step_*` directory holding it is complete and `kill -9` at any moment
leaves either the new state or an unfinished one, which the next run removes. Older
states are deleted, file by file, only after the new one is in place; a file a user
put into `train_state/` is never removed.

The data position and the RNG need no arrays: the batch order is a pure function of
(seed, step) (see `data.BatchOrder`), and nothing else in a step is random.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jax
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from pretty_jax.core.errors import CheckpointError
from pretty_jax.core.own_files import read_own
from pretty_jax.core.run_dir import RunDirectory
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


def _steps(root: Path, complete: bool) -> list[tuple[int, Path]]:
    """The saved states in `root`, complete (holding INFO_FILE) or not, by step."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()]
    return sorted((step, p) for step, p in found if (p / INFO_FILE).is_file() == complete)


def latest(output_dir: Path) -> Path | None:
    """The newest complete saved state, or None."""
    steps = _steps(output_dir / STATE_DIR, complete=True)
    return steps[-1][1] if steps else None


def save(output: RunDirectory, state: TrainState, info: dict[str, Any], keep: int = 1) -> Path:
    """Writes `state` and `info` (JSON) as `train_state/step_<N>` and deletes all but the
    newest `keep` states. Every process must call it (arrays are gathered); process 0,
    which holds `output` actively, writes."""
    host = {name: np.asarray(leaf) for name, leaf in _named_leaves(parallel.to_host(state))}
    step = int(host[".step"])
    final = f"{STATE_DIR}/step_{step:08d}"
    if not output.active:
        return output.path / final
    output.write_with(f"{final}/{ARRAYS_FILE}", lambda temporary: save_file(host, str(temporary), metadata={"format": FORMAT}))
    output.write_text(f"{final}/{INFO_FILE}", json.dumps({"format": FORMAT, "step": step, **info}, indent=2, allow_nan=False) + "\n")
    for _, path in _steps(output.path / STATE_DIR, complete=True)[:-keep]:
        _remove_state(output, path)
    return output.path / final


def _remove_state(output: RunDirectory, path: Path) -> None:
    """Deletes the files this run wrote in the state directory `path` (its info first,
    so that a kill in between leaves an unfinished state, never a wrong one)."""
    relative = f"{STATE_DIR}/{path.name}"
    owned = output.owned_under(relative)
    output.remove(sorted(owned, key=lambda name: not name.endswith("/" + INFO_FILE)))
    output.remove_empty_dirs(relative)


def remove_unfinished(output: RunDirectory) -> None:
    """Deletes the files of states that a killed save left unfinished."""
    if output.active:
        for _, path in _steps(output.path / STATE_DIR, complete=False):
            _remove_state(output, path)


def read_info(directory: Path) -> dict[str, Any]:
    info = json.loads(read_own(directory / INFO_FILE))
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
