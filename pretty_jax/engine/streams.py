"""One stream of a decode loop: one model over one prompt per row.

`prefill_rows` runs R left-padded rows through a stream's model into a `Prefilled`
block (keys, values, positions and final hidden states of every column), from which
the pool places examples into its slots and beam search starts its beams; `feed` runs
the same new token of every row through every stream of a system, returning each
stream's next-token logits for the system's `LogitsRule` (logits.py) to combine.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh

from pretty_jax.engine import parallel
from pretty_jax.engine.batching import positions_from_mask
from pretty_jax.models import Graph, KVCache, forward, new_cache


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Stream:
    """One model over one prompt per row, inside a decode loop (R rows, S columns).

    positions: [R] int32 position of each row's next token.
    cache: its KV cache, [R, K, S, H] per layer ([R, S, H] for a single KV head);
      `cache.end` is the column the next token is written to.
    """

    positions: jax.Array
    cache: KVCache


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Prefilled:
    """R left-padded rows of one stream, prefilled side by side. An example is placed
    from a row whole, or cut to the row's first L tokens when its tokens are a prefix of
    the row's (the cut columns are masked, as padding is).

    keys, values: one [R, K, P, H] array per layer ([R, P, H] for a single KV head).
    positions: [R, P] int32 position of each column's token, -1 on padding.
    hidden: [R, P, D] final-normed hidden states (the logits after any column).
    """

    keys: tuple[jax.Array, ...]
    values: tuple[jax.Array, ...]
    positions: jax.Array
    hidden: jax.Array

    @property
    def length(self) -> int:
        return self.positions.shape[1]


@functools.partial(jax.jit, static_argnames=("graph", "mesh", "width"))
def prefill_rows(graph: Graph, params: nnx.State, tokens_RP: jax.Array, mask_RP: jax.Array, *,
                 mesh: Mesh | None, width: int | None = None) -> Prefilled:
    """Runs R left-padded rows [R, P] through the model. With `width` (>= P) the block
    comes back left-padded to `width` columns, as if its rows had been padded so: what
    takes blocks of any P then compiles once."""
    R, P = tokens_RP.shape
    cache = parallel.constrain_cache(mesh, new_cache(graph.config, R, P, jax.tree.leaves(params)[0].dtype))
    model = nnx.merge(graph.graphdef, params)
    hidden_RPD, cache = model.hidden_states(tokens_RP, positions_from_mask(mask_RP), mask_RP, cache)
    block = Prefilled(keys=cache.keys, values=cache.values, positions=cache.positions, hidden=hidden_RPD)
    return block if width is None else _left_padded(block, width)


def _left_padded(block: Prefilled, width: int) -> Prefilled:
    """`block` with padding columns (zeros, position -1) added on the left up to `width`."""
    def pad(x: jax.Array, axis: int, fill) -> jax.Array:
        widths = [(0, 0)] * x.ndim
        widths[axis] = (width - block.length, 0)
        return jnp.pad(x, widths, constant_values=fill)

    return Prefilled(keys=tuple(pad(k, -2, 0) for k in block.keys), values=tuple(pad(v, -2, 0) for v in block.values),
                     positions=pad(block.positions, 1, -1), hidden=pad(block.hidden, 1, 0))


def logits_after(graph: Graph, params: nnx.State, hidden_RD: jax.Array) -> jax.Array:
    """The next-token logits [R, V] float32 after final hidden states [R, D]."""
    return nnx.merge(graph.graphdef, params).logits(hidden_RD[:, None])[:, 0]


def example_keys(seed: jax.Array, example_ids_B: jax.Array) -> jax.Array:
    """[B] typed PRNG keys, one per example."""
    return jax.vmap(lambda i: jax.random.fold_in(jax.random.key(seed), i))(example_ids_B)


def feed(graphs: tuple[Graph, ...], params: tuple[nnx.State, ...], streams: tuple[Stream, ...],
         token_R: jax.Array, running_R: jax.Array) -> tuple[tuple[jax.Array, ...], tuple[Stream, ...]]:
    """Runs token_R [R] through every stream (the rows not running write a masked
    column and keep their position); returns each stream's next-token logits [R, V]
    float32 and the advanced streams."""
    logits, advanced = [], []
    for graph, stream_params, stream in zip(graphs, params, streams):
        next_logits, cache = forward(
            graph.graphdef, stream_params, token_R[:, None], stream.positions[:, None],
            running_R.astype(jnp.int32)[:, None], stream.cache, last_only=True,
        )
        logits.append(next_logits)
        advanced.append(Stream(positions=stream.positions + running_R.astype(jnp.int32), cache=cache))
    return tuple(logits), tuple(advanced)
