"""The host loop of continuous batching: refill free slots, run a chunk, collect.

`run_pool` keeps a pool of B slots (slots.py) busy until every example is done: it
prefills the next waiting examples (`Scheduler`; one prefill serves every example that is
a prefix of another), admits them into free slots, decodes a chunk on device until
enough slots finished to be worth a refill, hands each finished example to `on_done`
and frees its slot. Every process of a multi-host run sees the same gathered results
and so makes the same decisions.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from typing import Callable, Sequence

import jax
import numpy as np
from jax.sharding import Mesh

from pretty_jax.engine import parallel, slots
from pretty_jax.engine.batching import left_pad
from pretty_jax.engine.decode import DecodeOutput
from pretty_jax.engine.scheduler import (
    Scheduler,
    prefill_length,
    prefix_families,
    row_buckets,
)
from pretty_jax.models import Model

# At most this many pool steps per device call, so results stream back to the host.
CHUNK_STEPS = 64


# (model graph, pool shape, strategy, program) of every program this process built.
_BUILT: set = set()


@dataclasses.dataclass
class PoolStats:
    """What a pool did, summed over `generate` calls.

    steps: pool steps run; busy_slot_steps: slot-steps that produced a token;
    programs: the program shapes used, e.g. ("prefill", rows, length), ("chunk", S);
    built: how many of them this process had not built before (compiled, or read
      from the persistent compilation cache);
    prefilled: examples that ran a prefill (the others were a prefix of one of them).
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


def run_pool(
    model: Model,
    mesh: Mesh | None,
    num_slots: int,
    inputs: Sequence[Sequence[int]],
    example_ids: Sequence[int],
    seed: int,
    stop_tables,
    strategy,
    statics,
    stats: PoolStats,
    on_done: Callable[[int, DecodeOutput], None],
    refill_at: int = 1,
) -> None:
    """Decodes every input (prompt + prior token ids); `on_done(index, output)` gets
    each example's one-row `DecodeOutput` (NumPy) as soon as it is finished.

    statics: the `LoopStatics` of the run (max_new_tokens, eos, pad, logprobs).
    refill_at: finished slots that end a chunk while examples wait.
    """
    if not inputs:
        return
    data = 1 if mesh is None else mesh.shape[parallel.DATA]
    pad_id, N = statics.pad_id, statics.max_new_tokens
    ring_len = max(prefill_length(len(x)) for x in inputs) + N
    pool = slots.PoolStatics(
        slots=num_slots, max_new_tokens=N, ring_len=ring_len, eos_ids=statics.eos_ids, pad_id=pad_id,
        num_stops=0 if stop_tables is None else int(stop_tables[0].shape[0]),
        return_logprobs=statics.return_logprobs,
    )
    graph, params = slots.Graph(model.graphdef), model.params
    state = slots.empty_pool(graph, params, pool=pool, mesh=mesh)
    _note_program(stats, (graph, pool, strategy), ("chunk", ring_len))
    families = prefix_families(inputs)
    scheduler = Scheduler([len(inputs[f[0]]) for f in families], window=4 * num_slots)
    waiting: collections.deque[_Placement] = collections.deque()  # prefilled, no slot yet
    held = [-1] * num_slots  # input index each slot holds, -1 when free
    remaining = len(inputs)
    while remaining:
        free = [s for s in range(num_slots) if held[s] < 0]
        taken = scheduler.take(len(free) - len(waiting)) if len(free) > len(waiting) else []
        if taken:
            waiting.extend(_prefill(taken, families, inputs, scheduler, pool, graph, params, mesh, data, stats))
        by_block: dict[int, list[tuple[int, _Placement]]] = {}  # one admit per prefilled block
        for slot in free[: len(waiting)]:
            placement = waiting.popleft()
            by_block.setdefault(id(placement.rows), []).append((slot, placement))
            held[slot] = placement.index
        for group in by_block.values():
            state = _admit(state, group, example_ids, seed, pool, graph, params, mesh, stats)
        pending = len(scheduler) + len(waiting)
        want = min(refill_at, pending) if pending else num_slots + 1
        state, ran = slots.run_chunk(graph, params, state, stop_tables, np.int32(want),
                                     strategy=strategy, pool=pool, mesh=mesh, chunk_steps=CHUNK_STEPS)
        host = parallel.to_host((ran, state.active, state.finish, state.tokens, state.lengths,
                                 state.logprobs if statics.return_logprobs else None))
        ran, active, finish, tokens, lengths, logprobs = host
        stats.steps += int(ran)
        done = [s for s in range(num_slots) if held[s] >= 0 and active[s] and finish[s] != slots.RUNNING]
        for s in done:
            stats.busy_slot_steps += int(lengths[s]) if finish[s] != slots.FINISH_LENGTH else N
            on_done(held[s], DecodeOutput(
                tokens=tokens[s : s + 1], lengths=lengths[s : s + 1], finish=finish[s : s + 1],
                logprobs=None if logprobs is None else logprobs[s : s + 1],
            ))
            held[s] = -1
        remaining -= len(done)
        if done:
            state = _release(state, done, num_slots, mesh)


@dataclasses.dataclass(frozen=True)
class _Placement:
    """Input `index` is the first `length` tokens of row `row` of the prefilled `rows`."""

    index: int
    rows: slots.Prefilled
    row: int
    length: int


def _prefill(taken, families, inputs, scheduler, pool, graph, params, mesh, data, stats) -> list[_Placement]:
    """Prefills the hosts of the `taken` families (one row each); every member of a
    family is placed from its host's row."""
    hosts = [families[k][0] for k in taken]
    rows, length = scheduler.prefill_shape(taken, pool.slots, data)
    padding = rows - len(hosts)
    tokens, mask, _ = left_pad([inputs[i] for i in hosts] + [inputs[hosts[0]]] * padding, pool.pad_id, length)
    _note_program(stats, (graph, pool), ("prefill", rows, length))
    put = lambda a: parallel.device_batch(mesh, a)  # noqa: E731
    block = slots.prefill_rows(graph, params, put(tokens), put(mask), mesh=mesh)
    stats.prefilled += len(hosts)
    return [_Placement(i, block, r, len(inputs[i])) for r, k in enumerate(taken) for i in families[k]]


def _admit(state, group, example_ids, seed, pool, graph, params, mesh, stats):
    """Places `group`, (slot, placement) pairs from one prefilled block, into the pool."""
    F = next(r for r in row_buckets(pool.slots, 1) if r >= len(group))
    padding = [(pool.slots, group[0][1])] * (F - len(group))
    entries = group + padding
    rows = group[0][1].rows
    _note_program(stats, (graph, pool), ("admit", rows.positions.shape[0], rows.positions.shape[1], F))
    index = lambda values: _replicated(mesh, np.array(values, np.int32))  # noqa: E731
    return slots.admit(
        graph, params, state, rows,
        index([p.row for _, p in entries]), index([p.length for _, p in entries]),
        index([slot for slot, _ in entries]), index([example_ids[p.index] for _, p in entries]),
        np.int32(seed), pool=pool, mesh=mesh,
    )


def _note_program(stats: PoolStats, owner: tuple, key: tuple) -> None:
    """Counts a program shape, logging the first use in this process."""
    stats.programs.add(key)
    if (owner, key) not in _BUILT:
        _BUILT.add((owner, key))
        stats.built += 1
        logging.info("continuous batching: building %s program %s", key[0], key[1:])


def _release(state, done, num_slots, mesh):
    slot_R = np.array(done + [num_slots] * (num_slots - len(done)), np.int32)
    return slots.release(state, _replicated(mesh, slot_R))


def _replicated(mesh: Mesh | None, host: np.ndarray) -> jax.Array:
    """A small index array every device holds whole."""
    return parallel.device_array(mesh, host, (None,) * host.ndim)
