"""`Model`: what a loaded or initialised model is to the rest of the package, and
`Graph`, its architecture as a jit-static argument."""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
from flax import nnx

if TYPE_CHECKING:
    from pretty_jax.models import ModelConfig


@dataclasses.dataclass(frozen=True, eq=False)
class Graph:
    """A model's `nnx.GraphDef` and config as a jit-static argument, hashed once: NNX
    hashes the whole node list at every hash (about 5 ms for 18 layers), and jit hashes
    its static arguments at every call, hundreds of calls per decode. Two graphs are
    equal when their graphdefs are (a foundation model and its SFT model share every
    compiled program)."""

    graphdef: nnx.GraphDef
    config: "ModelConfig"
    digest: int = dataclasses.field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "digest", hash(self.graphdef))

    def __hash__(self) -> int:
        return self.digest

    def __eq__(self, other) -> bool:
        return self is other or (
            isinstance(other, Graph) and self.digest == other.digest and self.graphdef == other.graphdef
        )


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

    @functools.cached_property
    def graph(self) -> Graph:
        """The architecture as a jit-static argument (built and hashed once)."""
        return Graph(self.graphdef, self.config)
