"""The decode engine on device: a pool of B slots and the one token step.

`Engine` is a frozen, hashable object — jit's static `self` — holding everything a
compiled program depends on: each stream's model graph (hashed once), the logits rule
that combines the streams (logits.py), the strategy, the pool's shape and the mesh.
Its verbs, the shape of JetStream's engine API:

- `prefill(stream, params, tokens_RP, mask_RP, width)` runs R waiting examples (prompt +
  prior, left-padded to P) through one stream's model, outside the pool; the pool asks
  for blocks `width` = S - N wide, so that `admit` compiles once per row count, not
  once per prompt length;
- `admit(params, state, admission)` moves examples from prefilled blocks into free
  slots: their rows of every stream's KV cache, positions, first logits, keys;
- `run_chunk(params, state, stops, refill_at)` runs `step`, one token for every running
  slot, until enough slots have finished to refill, no slot runs, or `chunk_steps`
  steps ran;
- `release(state, slot_B)` frees the slots whose results were collected.

`step` is the package's only token step: greedy and sampling, continuous batching and
static batches (pool.py: the pool that admits a whole batch and never refills) run it;
beam search (beam_search.py) shares its model step (`streams.feed`) and logits rule.
Host scheduling — which examples, when, in what shapes — lives in pool.py.

Each stream's KV cache is a ring of S = (longest prefill bucket) + N columns shared by
all slots: pool step g writes column g mod S in every row. A slot admitted at step g0
holds its P prompt columns just before g0 (ring-wise) and writes its N generated
tokens to g0 .. g0 + N - 1, so its own columns never collide. Attention masks by the
positions held in the cache, not by column order, so a row attends exactly as alone.

Randomness is per example: an example samples its step t with
`fold_in(fold_in(key(seed), example_id), t)`, whatever slot, chunk, batch, device or
host it runs in.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh

from pretty_jax.engine import parallel
from pretty_jax.engine.logits import LogitsRule
from pretty_jax.engine.stopping import StopTables
from pretty_jax.engine.strategies import Greedy, Sampling
from pretty_jax.engine.streams import Prefilled, Stream, example_keys, feed, logits_after, prefill_rows
from pretty_jax.models import Graph, KVCache, new_cache

# Why a row stopped.
RUNNING, FINISH_EOS, FINISH_STOP, FINISH_LENGTH = 0, 1, 2, 3
FINISH_REASONS = {FINISH_EOS: "eos", FINISH_STOP: "stop", FINISH_LENGTH: "length"}
# At most this many pool steps per device call, so results stream back to the host.
CHUNK_STEPS = 64

Params = tuple[nnx.State, ...]  # one model's parameters per stream


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DecodeOutput:
    """What the decode loops return for finished rows (greedy, sampling and beam search
    alike), as NumPy arrays on the host.

    tokens: [B, N] int32, N = max_new_tokens, pad after a row's length.
    lengths: [B] int32 tokens generated (the last one is the EOS / stop token, if any).
    finish: [B] int32 finish reason (`FINISH_REASONS`).
    logprobs: [B, N] float32 log-probabilities of the chosen tokens, when requested
      from greedy or sampling; else None.
    scores: [B] float32 length-penalised score of beam search's best hypothesis; else None.
    """

    tokens: jax.Array
    lengths: jax.Array
    finish: jax.Array
    logprobs: jax.Array | None = None
    scores: jax.Array | None = None


@dataclasses.dataclass(frozen=True)
class PoolShape:
    """The jit-static shape of a pool and its decoding settings (hashable).

    slots: B; max_new_tokens: N, the output buffers' width; ring_len: S = longest
    prefill bucket + N; eos_ids: the ids that end a row; num_stops: stop strings
    (`StopTables`); return_logprobs: keep the chosen tokens' log-probabilities.
    """

    slots: int
    max_new_tokens: int
    ring_len: int
    eos_ids: tuple[int, ...]
    pad_id: int
    num_stops: int = 0
    return_logprobs: bool = False
    chunk_steps: int = CHUNK_STEPS


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SlotState:
    """The pool of B slots. N = max_new_tokens.

    clock: [] int32 pool steps run so far (the ring column written next is clock mod S).
    active: [B] bool, the slot holds an example whose result was not collected yet.
    example_ids: [B] int32 the example each slot holds.
    keys: [B] typed PRNG keys of those examples.
    next_logits: [B, V] float32 the combined logits each slot's next token is picked from.
    tokens, logprobs: [B, N] output buffers.
    steps: [B] int32 tokens generated so far.
    limits: [B] int32 the most tokens each example may generate (<= N).
    finish: [B] int32 finish reason, RUNNING while the slot decodes.
    lengths: [B] int32 tokens of a finished example (its last one ends it).
    stop_states: [B, num_stops] int32 stop-string automaton states.
    streams: one `Stream` per stream of the system (positions and ring KV cache).
    """

    clock: jax.Array
    active: jax.Array
    example_ids: jax.Array
    keys: jax.Array
    next_logits: jax.Array
    tokens: jax.Array
    logprobs: jax.Array
    steps: jax.Array
    limits: jax.Array
    finish: jax.Array
    lengths: jax.Array
    stop_states: jax.Array
    streams: tuple[Stream, ...]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Admission:
    """F examples entering slots (an entry whose slot is B or more is padding, dropped).

    blocks: the prefilled block of each stream (the same rows, in stream order).
    row_F: the block row each example is placed from.
    length_SF: [streams, F] int32 each example's tokens in each stream (a prefix of its
      row when shorter than the row).
    slot_F, example_id_F: where each goes, and its id (its sampling key).
    limit_F: the most tokens each may generate.
    seed: [] int32.
    """

    blocks: tuple[Prefilled, ...]
    row_F: jax.Array
    length_SF: jax.Array
    slot_F: jax.Array
    example_id_F: jax.Array
    limit_F: jax.Array
    seed: jax.Array


@dataclasses.dataclass(frozen=True)
class Engine:
    """The static half of decoding (see the module docstring); `params` are given to
    each verb as data, one model's parameters per stream."""

    graphs: tuple[Graph, ...]
    rule: LogitsRule
    strategy: Greedy | Sampling
    shape: PoolShape
    mesh: Mesh | None = None

    def __post_init__(self):
        if len(self.graphs) != self.rule.streams:
            raise ValueError(f"{type(self.rule).__name__} reads {self.rule.streams} streams, not {len(self.graphs)}")

    # -- the verbs -------------------------------------------------------------------

    @functools.partial(jax.jit, static_argnums=0)
    def empty(self, params: Params) -> SlotState:
        """A pool with every slot free."""
        B, N, S = self.shape.slots, self.shape.max_new_tokens, self.shape.ring_len
        graph = self.graphs[0]
        streams = tuple(
            Stream(positions=jnp.zeros((B,), jnp.int32),
                   cache=new_cache(g.config, B, S, jax.tree.leaves(p)[0].dtype))
            for g, p in zip(self.graphs, params)
        )
        return self._constrain(SlotState(
            clock=jnp.zeros((), jnp.int32),
            active=jnp.zeros((B,), bool),
            example_ids=jnp.zeros((B,), jnp.int32),
            keys=example_keys(jnp.int32(0), jnp.zeros((B,), jnp.int32)),
            next_logits=jnp.zeros((B, graph.config.vocab_size), jnp.float32),
            tokens=jnp.full((B, N), self.shape.pad_id, jnp.int32),
            logprobs=jnp.zeros((B, N), jnp.float32),
            steps=jnp.zeros((B,), jnp.int32),
            limits=jnp.full((B,), N, jnp.int32),
            finish=jnp.full((B,), FINISH_LENGTH, jnp.int32),
            lengths=jnp.zeros((B,), jnp.int32),
            stop_states=jnp.zeros((B, self.shape.num_stops), jnp.int32),
            streams=streams,
        ))

    def prefill(self, stream: int, params: nnx.State, tokens_RP: jax.Array, mask_RP: jax.Array,
                width: int | None = None) -> Prefilled:
        """R left-padded rows [R, P] of stream `stream`, run through its model (the block
        left-padded to `width` columns when given: `prefill_rows`)."""
        return prefill_rows(self.graphs[stream], params, tokens_RP, mask_RP, mesh=self.mesh, width=width)

    @functools.partial(jax.jit, static_argnums=0, donate_argnames=("state",))
    def admit(self, params: Params, state: SlotState, admission: Admission) -> SlotState:
        """Puts `admission`'s examples into their slots."""
        a = admission
        F, N = a.slot_F.shape[0], self.shape.max_new_tokens
        put = lambda old, new: old.at[a.slot_F].set(new, mode="drop")  # noqa: E731
        logits, streams = [], []
        for s, (graph, stream_params, stream) in enumerate(zip(self.graphs, params, state.streams)):
            hidden_FD, cache = _place(state.clock, a, s, stream.cache)
            logits.append(logits_after(graph, stream_params, hidden_FD))
            streams.append(Stream(positions=put(stream.positions, a.length_SF[s]), cache=cache))
        return self._constrain(SlotState(
            clock=state.clock,
            active=put(state.active, jnp.ones((F,), bool)),
            example_ids=put(state.example_ids, a.example_id_F),
            keys=put(state.keys, example_keys(a.seed, a.example_id_F)),
            next_logits=put(state.next_logits, self.rule.combine(tuple(logits), jnp.zeros((F,), jnp.int32))),
            tokens=put(state.tokens, jnp.full((F, N), self.shape.pad_id, jnp.int32)),
            logprobs=put(state.logprobs, jnp.zeros((F, N), jnp.float32)),
            steps=put(state.steps, jnp.zeros((F,), jnp.int32)),
            limits=put(state.limits, a.limit_F),
            finish=put(state.finish, jnp.full((F,), RUNNING, jnp.int32)),
            lengths=put(state.lengths, a.limit_F),
            stop_states=put(state.stop_states, jnp.zeros((F,) + state.stop_states.shape[1:], jnp.int32)),
            streams=tuple(streams),
        ))

    @functools.partial(jax.jit, static_argnums=0, donate_argnames=("state",))
    def run_chunk(self, params: Params, state: SlotState, stops: StopTables,
                  refill_at: jax.Array) -> tuple[SlotState, jax.Array]:
        """Runs `step` until at least `refill_at` slots are finished (active, no longer
        running), no slot runs, or `chunk_steps` steps ran. Returns the state and the
        number of steps run."""
        def go_on(carry) -> jax.Array:
            state, steps = carry
            running = state.active & (state.finish == RUNNING)
            finished = jnp.sum(state.active & ~running)
            return jnp.any(running) & (finished < refill_at) & (steps < self.shape.chunk_steps)

        def body(carry):
            state, steps = carry
            return self.step(params, stops, state), steps + 1

        return jax.lax.while_loop(go_on, body, (state, jnp.zeros((), jnp.int32)))

    @functools.partial(jax.jit, static_argnums=0, donate_argnames=("state",))
    def release(self, state: SlotState, slot_B: jax.Array) -> SlotState:
        """Marks slots `slot_B` free (an index of B or more is ignored)."""
        return dataclasses.replace(state, active=state.active.at[slot_B].set(False, mode="drop"))

    # -- the token step --------------------------------------------------------------

    def step(self, params: Params, stops: StopTables, state: SlotState) -> SlotState:
        """One token for every running slot: pick it from the combined logits, record
        it, check EOS / stop strings / the example's limit, and feed it to every stream."""
        B, N = self.shape.slots, self.shape.max_new_tokens
        running_B = state.active & (state.finish == RUNNING)
        step_keys_B = jax.vmap(jax.random.fold_in)(state.keys, state.steps)
        token_B = jnp.where(running_B, self.strategy.next_token(state.next_logits, step_keys_B), self.shape.pad_id)
        rows_B, column_B = jnp.arange(B), jnp.minimum(state.steps, N - 1)

        def record(buffer_BN: jax.Array, value_B: jax.Array) -> jax.Array:
            return buffer_BN.at[rows_B, column_B].set(jnp.where(running_B, value_B, buffer_BN[rows_B, column_B]))

        logprobs = state.logprobs
        if self.shape.return_logprobs:
            chosen_B = jnp.take_along_axis(jax.nn.log_softmax(state.next_logits), token_B[:, None], axis=-1)[:, 0]
            logprobs = record(logprobs, chosen_B)
        hit_eos_B = jnp.isin(token_B, jnp.asarray(self.shape.eos_ids, jnp.int32)) & running_B
        stop_states, hit_stop_B = stops.advance(state.stop_states, token_B)
        hit_stop_B &= running_B
        steps_B = state.steps + running_B.astype(jnp.int32)
        out_of_room_B = running_B & (steps_B >= state.limits)
        finish_B = jnp.where(hit_eos_B, FINISH_EOS, jnp.where(hit_stop_B, FINISH_STOP, state.finish))
        finish_B = jnp.where(out_of_room_B & (finish_B == RUNNING), FINISH_LENGTH, finish_B)
        column = state.clock % self.shape.ring_len
        streams = tuple(dataclasses.replace(s, cache=dataclasses.replace(s.cache, end=column)) for s in state.streams)
        logits, streams = feed(self.graphs, params, streams, token_B, running_B)
        return self._constrain(dataclasses.replace(
            state,
            clock=state.clock + 1,
            next_logits=self.rule.combine(logits, steps_B),
            tokens=record(state.tokens, token_B),
            logprobs=logprobs,
            steps=steps_B,
            finish=finish_B,
            lengths=jnp.where(hit_eos_B | hit_stop_B, steps_B, state.lengths),
            stop_states=stop_states,
            streams=streams,
        ))

    # -- helpers ---------------------------------------------------------------------

    def _constrain(self, state: SlotState) -> SlotState:
        if self.mesh is None:
            return state
        streams = tuple(dataclasses.replace(s, cache=parallel.constrain_cache(self.mesh, s.cache))
                        for s in state.streams)
        return dataclasses.replace(state, streams=streams)


def _place(clock: jax.Array, admission: Admission, stream: int, cache: KVCache) -> tuple[jax.Array, KVCache]:
    """Stream `stream`'s share of an admission: each example's prefilled row cut to its
    length and laid into its slot's ring just before column `clock`. Returns the hidden
    states after each example's last token [F, D] and the stream's cache."""
    a, S = admission, cache.max_len
    block = a.blocks[stream]
    row_positions_FP = block.positions[a.row_F]
    length_F = a.length_SF[stream]
    positions_FP = jnp.where(row_positions_FP < length_F[:, None], row_positions_FP, -1)
    last_column_F = block.length - jnp.sum(row_positions_FP >= 0, axis=1) + length_F - 1

    def put(old: jax.Array, rows: jax.Array, axis: int, fill) -> jax.Array:
        pad = [(0, 0)] * rows.ndim
        pad[axis] = (S - rows.shape[axis], 0)
        ring = jnp.roll(jnp.pad(rows.astype(old.dtype), pad, constant_values=fill), clock % S, axis=axis)
        return old.at[a.slot_F].set(ring, mode="drop")

    placed = KVCache(
        keys=tuple(put(old, new[a.row_F], -2, 0) for old, new in zip(cache.keys, block.keys)),
        values=tuple(put(old, new[a.row_F], -2, 0) for old, new in zip(cache.values, block.values)),
        positions=put(cache.positions, positions_FP, 1, -1),
        end=cache.end,
    )
    return block.hidden[a.row_F, last_column_F], placed
