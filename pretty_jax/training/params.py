"""Parameters as a flat dict while training, an `nnx.State` when running the model.

Training keeps parameters as `{path: array}` (`layers.0.attn.q_proj`): the optimiser,
LoRA and the saved train state all address them by the same paths the checkpoint
layouts use. `to_state` rebuilds the model's state (inside `jit`, at no cost).
"""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
from flax import nnx

Flat = dict[str, jax.Array]


def _name(path: tuple) -> str:
    return ".".join(map(str, path))


def to_state(template: nnx.State, flat: Mapping[str, jax.Array]) -> nnx.State:
    """The model state with the structure and metadata of `template` and the values
    of `flat` (which may be tracers)."""
    return nnx.from_flat_state(
        [(path, variable.replace(value=flat[_name(path)])) for path, variable in nnx.to_flat_state(template)]
    )


def logical_axes(template: nnx.State) -> dict[str, tuple]:
    """Parameter path -> the logical axes it was declared with."""
    return {
        _name(path): tuple(variable.get_metadata().get("logical_axes", ()))
        for path, variable in nnx.to_flat_state(template)
    }


def shapes(template: nnx.State) -> dict[str, tuple[int, ...]]:
    return {_name(path): tuple(variable.get_value().shape) for path, variable in nnx.to_flat_state(template)}


def cast(flat: Mapping[str, jax.Array], dtype: jnp.dtype) -> Flat:
    return {path: array.astype(dtype) for path, array in flat.items()}
