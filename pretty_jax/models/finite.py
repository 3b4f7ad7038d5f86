"""Finite or refused: a model whose parameters, or whose logits on a first short input,
hold a NaN or an infinity would decode token 0 forever and be scored as if it had
answered. Both checks run on device, where the parameters already are (sharded or not).

- `non_finite_parameters`: one jitted reduction over every parameter (a float32 sum
  each), a flag per parameter; the host reads back one small vector.
- `first_logits_finite`: one forward pass over `PROBE_LENGTH` tokens, which catches
  what finite weights still make non-finite (a config value, an activation that
  overflows the dtype).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from pretty_jax.models import forward
from pretty_jax.models.model import Graph, Model

# Tokens of the probe input (ids 0, 1, ..., modulo the vocabulary).
PROBE_LENGTH = 4


@jax.jit
def _finite_sums(leaves: list[jax.Array]) -> jax.Array:
    """[len(leaves)] bool: whether each array's float32 sum is finite. A NaN or an
    infinity anywhere makes it NaN or infinite; so may (rarely) finite values whose sum
    overflows, which `non_finite_parameters` then looks at element by element. A sum
    runs about ten times faster than an elementwise `isfinite(...).all()` on CPU."""
    return jnp.stack([jnp.isfinite(jnp.sum(leaf, dtype=jnp.float32)) for leaf in leaves])


def _host(array: jax.Array) -> np.ndarray:
    """A replicated result on the host (on several hosts, each reads its own copy)."""
    return np.asarray(array.addressable_data(0))


def non_finite_parameters(params: nnx.State) -> list[str]:
    """The paths (`layers.0.attn.q_proj`) of the parameters holding a NaN or an
    infinity, in the parameters' order; empty when all are finite."""
    flat = [(".".join(map(str, path)), variable.get_value()) for path, variable in nnx.to_flat_state(params)]
    sums_finite = _host(_finite_sums([value for _, value in flat]))
    suspects = [(path, value) for (path, value), finite in zip(flat, sums_finite) if not finite]
    return [path for path, value in suspects if not bool(_host(jnp.isfinite(value).all()))]


@functools.partial(jax.jit, static_argnums=0)
def _logits_finite(graph: Graph, params: nnx.State) -> jax.Array:
    tokens_BT = (jnp.arange(PROBE_LENGTH, dtype=jnp.int32) % graph.config.vocab_size)[None]
    positions_BT = jnp.arange(PROBE_LENGTH, dtype=jnp.int32)[None]
    logits_BTV, _ = forward(graph.graphdef, params, tokens_BT, positions_BT, jnp.ones_like(tokens_BT))
    return jnp.isfinite(logits_BTV).all()


def first_logits_finite(model: Model) -> bool:
    """Whether the model's logits over a short probe input (`PROBE_LENGTH` tokens) are
    all finite."""
    return bool(_host(_logits_finite(model.graph, model.params)))
