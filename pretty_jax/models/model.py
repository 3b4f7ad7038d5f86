"""`Model`: what a loaded or initialised model is to the rest of the package."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
from flax import nnx

if TYPE_CHECKING:
    from pretty_jax.models import ModelConfig


@dataclasses.dataclass(frozen=True)
class Model:
    """A model ready to run: its architecture and `forward(graphdef, params, ...)`.

    It knows nothing of where it came from; callers that need the checkpoint's
    tokenizer or name keep the path they loaded it from.
    """

    config: ModelConfig
    graphdef: nnx.GraphDef
    params: nnx.State

    @property
    def dtype(self) -> jnp.dtype:
        return jax.tree.leaves(self.params)[0].dtype
