"""Continuous batching on device: a fixed pool of B slots decoding side by side.

Three jitted programs, two of them on a `SlotState`:

- `prefill_rows` prefills R waiting examples (left-padded to a bucket P) into a
  `Prefilled` block, outside the pool;
- `admit` moves examples from such a block into free slots: their rows of the KV cache,
  next-token logits, positions, keys. One row serves every example whose tokens are a
  prefix of it (cut columns are masked), so a prompt with and without its prior
  costs one prefill; an example the free slots cannot take yet waits in its block.
- `run_chunk` decodes one token per running slot per step (exactly `decode._step`'s
  arithmetic, with a per-slot step count) until enough slots have finished to refill,
  every slot is done, or `chunk_steps` steps ran.

The KV cache is a ring of S = (longest bucket) + N columns shared by all slots: step g
of the pool writes column g mod S in every row. A slot admitted at step g0 holds its
P prompt columns just before g0 (ring-wise) and writes its N generated tokens to
g0 .. g0 + N - 1, so its own columns never collide. Attention masks by the positions
held in the cache, not by column order, so a row attends exactly as in a static batch.

Randomness is per example, as in `decode.py`: an example samples its step t with
`fold_in(fold_in(key(seed), example_id), t)`, whatever slot or chunk it runs in.
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
from pretty_jax.engine.decode import (
    FINISH_EOS,
    FINISH_LENGTH,
    FINISH_STOP,
    RUNNING,
    example_keys,
)
from pretty_jax.engine.stopping import advance_states
from pretty_jax.engine.strategies import Greedy, Sampling
from pretty_jax.models import KVCache, forward_last, new_cache


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SlotState:
    """The pool of B slots. N = max_new_tokens, S = ring length.

    clock: [] int32 pool steps run so far (the ring column written next is clock mod S).
    active: [B] bool, the slot holds an example whose result was not collected yet.
    example_ids: [B] int32 the example each slot holds.
    keys: [B] typed PRNG keys of those examples.
    next_logits: [B, V] float32 logits for each slot's next token.
    tokens, logprobs: [B, N] output buffers.
    steps: [B] int32 tokens generated so far.
    finish: [B] int32 finish reason, RUNNING while the slot decodes.
    lengths: [B] int32 tokens of a finished example (its last one ends it).
    positions: [B] int32 position of each slot's next token.
    stop_states: [B, num_stops] int32 stop-string automaton states.
    cache: the ring KV cache, [B, K, S, H] per layer ([B, S, H] for a single KV head).
    """

    clock: jax.Array
    active: jax.Array
    example_ids: jax.Array
    keys: jax.Array
    next_logits: jax.Array
    tokens: jax.Array
    logprobs: jax.Array
    steps: jax.Array
    finish: jax.Array
    lengths: jax.Array
    positions: jax.Array
    stop_states: jax.Array
    cache: KVCache


@dataclasses.dataclass(frozen=True)
class PoolStatics:
    """The jit-static shape of a pool (hashable). ring_len = longest prefill bucket +
    max_new_tokens."""

    slots: int
    max_new_tokens: int
    ring_len: int
    eos_ids: tuple[int, ...]
    pad_id: int
    num_stops: int
    return_logprobs: bool = False


def _constrain(mesh: Mesh | None, state: SlotState) -> SlotState:
    if mesh is None:
        return state
    return dataclasses.replace(state, cache=parallel.constrain_cache(mesh, state.cache))


@dataclasses.dataclass(frozen=True, eq=False)
class Graph:
    """A model's `nnx.GraphDef` as a jit-static argument, hashed once: NNX hashes the
    whole node list at every hash (about 5 ms for 18 layers), and jit hashes its static
    arguments at every call, hundreds of calls per pool."""

    graphdef: nnx.GraphDef
    digest: int = dataclasses.field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "digest", hash(self.graphdef))

    def __hash__(self) -> int:
        return self.digest

    def __eq__(self, other) -> bool:
        return self is other or (
            isinstance(other, Graph) and self.digest == other.digest and self.graphdef == other.graphdef
        )


@functools.partial(jax.jit, static_argnames=("graph", "pool", "mesh"))
def empty_pool(graph: Graph, params: nnx.State, *, pool: PoolStatics, mesh: Mesh | None) -> SlotState:
    """A pool with every slot free."""
    config = nnx.merge(graph.graphdef, params).config
    dtype = jax.tree.leaves(params)[0].dtype
    B, N = pool.slots, pool.max_new_tokens
    cache = new_cache(config, B, pool.ring_len, dtype)
    return _constrain(mesh, SlotState(
        clock=jnp.zeros((), jnp.int32),
        active=jnp.zeros((B,), bool),
        example_ids=jnp.zeros((B,), jnp.int32),
        keys=example_keys(jnp.int32(0), jnp.zeros((B,), jnp.int32)),
        next_logits=jnp.zeros((B, config.vocab_size), jnp.float32),
        tokens=jnp.full((B, N), pool.pad_id, jnp.int32),
        logprobs=jnp.zeros((B, N), jnp.float32),
        steps=jnp.zeros((B,), jnp.int32),
        finish=jnp.full((B,), FINISH_LENGTH, jnp.int32),
        lengths=jnp.zeros((B,), jnp.int32),
        positions=jnp.zeros((B,), jnp.int32),
        stop_states=jnp.zeros((B, pool.num_stops), jnp.int32),
        cache=cache,
    ))


def _to_ring(block: jax.Array, axis: int, ring_len: int, clock: jax.Array, fill) -> jax.Array:
    """Prefill columns (P along `axis`) -> ring rows (S along `axis`) whose last P
    columns end just before column `clock mod S`."""
    pad = [(0, 0)] * block.ndim
    pad[axis] = (ring_len - block.shape[axis], 0)
    padded = jnp.pad(block, pad, constant_values=fill)
    return jnp.roll(padded, clock % ring_len, axis=axis)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Prefilled:
    """R left-padded rows prefilled side by side, not yet in the pool. An example is
    placed from a row whole, or cut to the row's first L tokens when its tokens are a
    prefix of the row's (the cut columns are masked, as padding is).

    keys, values: one [R, K, P, H] array per layer ([R, P, H] for a single KV head).
    positions: [R, P] int32 position of each column's token, -1 on padding.
    hidden: [R, P, D] final-normed hidden states (the logits after any column).
    """

    keys: tuple[jax.Array, ...]
    values: tuple[jax.Array, ...]
    positions: jax.Array
    hidden: jax.Array


@functools.partial(jax.jit, static_argnames=("graph", "mesh"))
def prefill_rows(
    graph: Graph, params: nnx.State, tokens_RP: jax.Array, mask_RP: jax.Array, *, mesh: Mesh | None
) -> Prefilled:
    """Runs R left-padded rows [R, P] through the model."""
    model = nnx.merge(graph.graphdef, params)
    R, P = tokens_RP.shape
    cache = parallel.constrain_cache(mesh, new_cache(model.config, R, P, jax.tree.leaves(params)[0].dtype))
    hidden_RPD, cache = model.hidden_states(tokens_RP, positions_from_mask(mask_RP), mask_RP, cache)
    return Prefilled(keys=cache.keys, values=cache.values, positions=cache.positions, hidden=hidden_RPD)


@functools.partial(jax.jit, static_argnames=("graph", "pool", "mesh"), donate_argnames=("state",))
def admit(
    graph: Graph,
    params: nnx.State,
    state: SlotState,
    rows: Prefilled,
    row_F: jax.Array,
    length_F: jax.Array,
    slot_F: jax.Array,
    example_ids_F: jax.Array,
    seed: jax.Array,
    *,
    pool: PoolStatics,
    mesh: Mesh | None,
) -> SlotState:
    """Puts F examples into slots `slot_F` (an index of B or more drops that entry:
    padding): example f is the first `length_F[f]` tokens of prefilled row `row_F[f]`."""
    model = nnx.merge(graph.graphdef, params)
    P = rows.positions.shape[1]
    row_positions_FP = rows.positions[row_F]
    positions_FP = jnp.where(row_positions_FP < length_F[:, None], row_positions_FP, -1)
    last_column_F = P - jnp.sum(row_positions_FP >= 0, axis=1) + length_F - 1
    logits_FV = model.logits(rows.hidden[row_F, last_column_F][:, None])[:, 0]
    put = lambda old, new: old.at[slot_F].set(new, mode="drop")  # noqa: E731
    ring = lambda block, axis, fill: _to_ring(block, axis, pool.ring_len, state.clock, fill)  # noqa: E731
    old = state.cache
    new_cache_ = KVCache(
        keys=tuple(put(o, ring(n[row_F].astype(o.dtype), -2, 0)) for o, n in zip(old.keys, rows.keys)),
        values=tuple(put(o, ring(n[row_F].astype(o.dtype), -2, 0)) for o, n in zip(old.values, rows.values)),
        positions=put(old.positions, ring(positions_FP, 1, -1)),
        end=old.end,
    )
    F, N = slot_F.shape[0], pool.max_new_tokens
    return _constrain(mesh, SlotState(
        clock=state.clock,
        active=put(state.active, jnp.ones((F,), bool)),
        example_ids=put(state.example_ids, example_ids_F),
        keys=put(state.keys, example_keys(seed, example_ids_F)),
        next_logits=put(state.next_logits, logits_FV),
        tokens=put(state.tokens, jnp.full((F, N), pool.pad_id, jnp.int32)),
        logprobs=put(state.logprobs, jnp.zeros((F, N), jnp.float32)),
        steps=put(state.steps, jnp.zeros((F,), jnp.int32)),
        finish=put(state.finish, jnp.full((F,), RUNNING, jnp.int32)),
        lengths=put(state.lengths, jnp.full((F,), N, jnp.int32)),
        positions=put(state.positions, length_F),
        stop_states=put(state.stop_states, jnp.zeros((F, pool.num_stops), jnp.int32)),
        cache=new_cache_,
    ))


def _step(graphdef, params, strategy, pool: PoolStatics, stop_tables, mesh, state: SlotState) -> SlotState:
    """One token for every running slot (the arithmetic of `decode._step`)."""
    B, N = pool.slots, pool.max_new_tokens
    running_B = state.active & (state.finish == RUNNING)
    step_keys_B = jax.vmap(jax.random.fold_in)(state.keys, state.steps)
    token_B = strategy.next_token(state.next_logits, step_keys_B)
    token_B = jnp.where(running_B, token_B, pool.pad_id)
    rows_B, column_B = jnp.arange(B), jnp.minimum(state.steps, N - 1)
    logprobs = state.logprobs
    if pool.return_logprobs:
        chosen_B = jnp.take_along_axis(jax.nn.log_softmax(state.next_logits), token_B[:, None], axis=-1)[:, 0]
        logprobs = logprobs.at[rows_B, column_B].set(jnp.where(running_B, chosen_B, logprobs[rows_B, column_B]))
    tokens = state.tokens.at[rows_B, column_B].set(jnp.where(running_B, token_B, state.tokens[rows_B, column_B]))
    hit_eos_B = jnp.isin(token_B, jnp.asarray(pool.eos_ids, jnp.int32)) & running_B
    stop_states, hit_stop_B = state.stop_states, jnp.zeros_like(running_B)
    if stop_tables is not None:
        stop_states, hit_stop_B = advance_states(*stop_tables, state.stop_states, token_B)
        hit_stop_B &= running_B
    steps_B = state.steps + running_B.astype(jnp.int32)
    out_of_room_B = running_B & (steps_B >= N)
    finish_B = jnp.where(hit_eos_B, FINISH_EOS, jnp.where(hit_stop_B, FINISH_STOP, state.finish))
    finish_B = jnp.where(out_of_room_B & (finish_B == RUNNING), FINISH_LENGTH, finish_B)
    lengths_B = jnp.where(hit_eos_B | hit_stop_B, steps_B, state.lengths)
    cache = dataclasses.replace(state.cache, end=state.clock % pool.ring_len)
    next_logits, cache = forward_last(
        graphdef, params, token_B[:, None], state.positions[:, None], running_B.astype(jnp.int32)[:, None], cache
    )
    return _constrain(mesh, dataclasses.replace(
        state,
        clock=state.clock + 1,
        next_logits=next_logits,
        tokens=tokens,
        logprobs=logprobs,
        steps=steps_B,
        finish=finish_B,
        lengths=lengths_B,
        positions=state.positions + running_B.astype(jnp.int32),
        stop_states=stop_states,
        cache=cache,
    ))


@functools.partial(
    jax.jit, static_argnames=("graph", "strategy", "pool", "mesh", "chunk_steps"), donate_argnames=("state",)
)
def run_chunk(
    graph: Graph,
    params: nnx.State,
    state: SlotState,
    stop_tables: tuple[jax.Array, jax.Array] | None,
    refill_at: jax.Array,
    *,
    strategy: Greedy | Sampling,
    pool: PoolStatics,
    mesh: Mesh | None,
    chunk_steps: int,
) -> tuple[SlotState, jax.Array]:
    """Decodes until at least `refill_at` slots are finished (active, no longer
    running), no slot runs, or `chunk_steps` steps ran. Returns the state and the
    number of steps run."""
    body = functools.partial(_step, graph.graphdef, params, strategy, pool, stop_tables, mesh)

    def go_on(carry) -> jax.Array:
        state, steps = carry
        running = state.active & (state.finish == RUNNING)
        finished = jnp.sum(state.active & ~running)
        return jnp.any(running) & (finished < refill_at) & (steps < chunk_steps)

    return jax.lax.while_loop(go_on, lambda c: (body(c[0]), c[1] + 1), (state, jnp.zeros((), jnp.int32)))


@functools.partial(jax.jit, donate_argnames=("state",))
def release(state: SlotState, slot_B: jax.Array) -> SlotState:
    """Marks slots `slot_B` free after their results were collected (an index of B or
    more is ignored)."""
    return dataclasses.replace(state, active=state.active.at[slot_B].set(False, mode="drop"))
