"""The host side of greedy and sampling decoding: a pool of slots kept busy.

`run_pool` drives an `Engine` (engine.py) until every request is done: it takes the
next waiting requests (`Scheduler`), prefills them — one prefill serves every request
whose tokens are a prefix of another's (`prefix_families`) — admits them into free
slots, runs a chunk on device until enough slots finished to be worth a refill, hands
each finished request to `on_done` and frees its slot. Two schedules over the same
engine and the same token step:

  continuous  a free slot takes the next waiting request as soon as one finishes;
  static      a whole batch is admitted in input order and the pool refills only once
              every slot is free (static batching: the pool without refills).

Every process of a multi-host run sees the same gathered results and so makes the same
decisions. Nothing here reads an array's values but the finished rows'.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from typing import Callable, Sequence

import jax
import numpy as np

from pretty_jax.engine import parallel
from pretty_jax.engine.batching import left_pad
from pretty_jax.engine.engine import Admission, DecodeOutput, Engine, Params, SlotState, RUNNING
from pretty_jax.engine.scheduler import Scheduler, prefill_length, prefix_families, row_buckets
from pretty_jax.engine.stopping import StopTables
from pretty_jax.engine.streams import Prefilled


@dataclasses.dataclass(frozen=True)
class Request:
    """One example to decode.

    tokens: its prompt + prior token ids in each stream of the system (stream order).
    example_id: the id its sampling key is drawn from.
    limit: the most tokens it may generate (at most the engine's max_new_tokens).
    """

    tokens: tuple[tuple[int, ...], ...]
    example_id: int
    limit: int


@dataclasses.dataclass(frozen=True)
class Job:
    """What one `run_pool` call decodes: the requests, the stop strings' automata, the
    sampling seed, and the schedule (continuous, or static batches)."""

    requests: Sequence[Request]
    stops: StopTables
    seed: int = 0
    continuous: bool = True


@dataclasses.dataclass
class PoolStats:
    """What a pool did, summed over `generate` calls.

    steps: pool steps run; busy_slot_steps: slot-steps that produced a token;
    programs: the program shapes used, e.g. ("prefill", rows, length), ("chunk", S);
    built: how many of them these calls used first (compiled, or read from the
      persistent compilation cache, unless an earlier generator built them);
    prefilled: requests that ran a prefill (the others were a prefix of one of them).
    """

    slots: int
    steps: int = 0
    busy_slot_steps: int = 0
    programs: set = dataclasses.field(default_factory=set)
    built: int = 0
    prefilled: int = 0

    @property
    def utilisation(self) -> float:
        return self.busy_slot_steps / max(1, self.steps * self.slots)

    def note(self, key: tuple) -> None:
        """Counts a program shape, logging its first use."""
        if key not in self.programs:
            self.programs.add(key)
            self.built += 1
            logging.info("decode pool: building %s program %s", key[0], key[1:])


def ring_length(requests: Sequence[Request], max_new_tokens: int) -> int:
    """S: the longest padded prefill of any stream + the new tokens."""
    return max(prefill_length(len(tokens)) for r in requests for tokens in r.tokens) + max_new_tokens


def run_pool(engine: Engine, params: Params, job: Job, stats: PoolStats,
             on_done: Callable[[int, DecodeOutput], None]) -> None:
    """Decodes every request of `job`; `on_done(index, output)` gets each request's
    one-row `DecodeOutput` (NumPy) as soon as it is finished."""
    if job.requests:
        _PoolRun(engine, params, job, stats).run(on_done)


@dataclasses.dataclass(frozen=True)
class _Placement:
    """Request `index` is the first `lengths[s]` tokens of row `row` of stream s's
    prefilled block."""

    index: int
    blocks: tuple[Prefilled, ...]
    row: int
    lengths: tuple[int, ...]


class _PoolRun:
    """One `run_pool` call: the waiting requests, the pool and which slot holds what."""

    def __init__(self, engine: Engine, params: Params, job: Job, stats: PoolStats):
        self.engine, self.params, self.job, self.stats = engine, params, job, stats
        self.slots = engine.shape.slots
        self.families = prefix_families([r.tokens for r in job.requests])
        window = 4 * self.slots if job.continuous else 1
        self.scheduler = Scheduler([len(job.requests[f[0]].tokens[0]) for f in self.families], window=window)
        self.waiting: collections.deque[_Placement] = collections.deque()  # prefilled, no slot yet
        self.held = [-1] * self.slots  # request index each slot holds, -1 when free
        self.data = 1 if engine.mesh is None else engine.mesh.shape[parallel.DATA]
        # Every prefilled block as wide as the longest (S - N columns): one admit program per row count.
        self.block_width = engine.shape.ring_len - engine.shape.max_new_tokens

    def run(self, on_done: Callable[[int, DecodeOutput], None]) -> None:
        state = self.engine.empty(self.params)
        self.stats.note(("chunk", self.engine.shape.ring_len))
        remaining = len(self.job.requests)
        while remaining:
            state = self._refill(state)
            pending = len(self.scheduler) + len(self.waiting)
            refill_at = 1 if pending and self.job.continuous else self.slots + 1
            state, ran = self.engine.run_chunk(self.params, state, self.job.stops, np.int32(refill_at))
            done = self._collect(state, ran, on_done)
            remaining -= len(done)
            if done:
                state = self.engine.release(state, self._indices(done + [self.slots] * (self.slots - len(done))))

    def _refill(self, state: SlotState) -> SlotState:
        free = [s for s in range(self.slots) if self.held[s] < 0]
        if not self.job.continuous and len(free) < self.slots:
            return state
        if len(free) > len(self.waiting):
            taken = self.scheduler.take(len(free) - len(self.waiting))
            if taken:
                self.waiting.extend(self._prefill(taken))
        by_block: dict[int, list[tuple[int, _Placement]]] = {}  # one admission per prefilled block
        for slot in free[: len(self.waiting)]:
            placement = self.waiting.popleft()
            by_block.setdefault(id(placement.blocks[0]), []).append((slot, placement))
            self.held[slot] = placement.index
        for group in by_block.values():
            state = self._admit(state, group)
        return state

    def _prefill(self, taken: list[int]) -> list[_Placement]:
        """Prefills the hosts of the `taken` families (one row each, in every stream);
        every member of a family is placed from its host's row."""
        requests, engine = self.job.requests, self.engine
        hosts = [requests[self.families[k][0]] for k in taken]
        rows = next(r for r in row_buckets(self.slots, self.data) if r >= len(hosts))
        blocks = []
        for s in range(len(engine.graphs)):
            sequences = [h.tokens[s] for h in hosts]
            length = prefill_length(max(len(x) for x in sequences))
            tokens, mask, _ = left_pad(sequences + [sequences[0]] * (rows - len(hosts)), engine.shape.pad_id, length)
            self.stats.note(("prefill", rows, length))
            put = lambda a: parallel.device_batch(engine.mesh, a)  # noqa: E731
            blocks.append(engine.prefill(s, self.params[s], put(tokens), put(mask), width=self.block_width))
        self.stats.prefilled += len(hosts)
        blocks = tuple(blocks)
        return [_Placement(i, blocks, r, tuple(len(x) for x in requests[i].tokens))
                for r, k in enumerate(taken) for i in self.families[k]]

    def _admit(self, state: SlotState, group: list[tuple[int, _Placement]]) -> SlotState:
        """Places `group`, (slot, placement) pairs from one prefilled block, into the pool."""
        F = next(r for r in row_buckets(self.slots, 1) if r >= len(group))
        entries = group + [(self.slots, group[0][1])] * (F - len(group))
        blocks = group[0][1].blocks
        self.stats.note(("admit", blocks[0].positions.shape[0], F))
        requests = self.job.requests
        admission = Admission(
            blocks=blocks,
            row_F=self._indices([p.row for _, p in entries]),
            length_SF=self._indices([[p.lengths[s] for _, p in entries] for s in range(len(blocks))]),
            slot_F=self._indices([slot for slot, _ in entries]),
            example_id_F=self._indices([requests[p.index].example_id for _, p in entries]),
            limit_F=self._indices([requests[p.index].limit for _, p in entries]),
            seed=np.int32(self.job.seed),
        )
        return self.engine.admit(self.params, state, admission)

    def _collect(self, state: SlotState, ran: jax.Array, on_done: Callable[[int, DecodeOutput], None]) -> list[int]:
        """Hands every finished request to `on_done` (one transfer from the device per
        chunk); returns their slots."""
        return_logprobs = self.engine.shape.return_logprobs
        ran, active, finish, tokens, lengths, logprobs = parallel.to_host(
            (ran, state.active, state.finish, state.tokens, state.lengths, state.logprobs if return_logprobs else None))
        self.stats.steps += int(ran)
        done = [s for s in range(self.slots) if self.held[s] >= 0 and active[s] and finish[s] != RUNNING]
        for s in done:
            self.stats.busy_slot_steps += int(lengths[s])
            on_done(self.held[s], DecodeOutput(
                tokens=tokens[s : s + 1], lengths=lengths[s : s + 1], finish=finish[s : s + 1],
                logprobs=None if logprobs is None else logprobs[s : s + 1],
            ))
            self.held[s] = -1
        return done

    def _indices(self, values) -> jax.Array:
        """A small index array every device holds whole."""
        host = np.array(values, np.int32)
        return parallel.device_array(self.engine.mesh, host, (None,) * host.ndim)
