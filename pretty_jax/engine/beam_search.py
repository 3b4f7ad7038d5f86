"""Beam search on device, step for step the algorithm of HF transformers' `generate`.

Letters: B examples, W beams, C = max(2, 1 + #EOS) * W candidates kept per step,
N = max_new_tokens, V vocabulary. Each stream's KV cache holds B * W rows
(example-major). The model step and the logits rule are the token loop's
(`streams.feed`, the engine's `LogitsRule`); only the bookkeeping of beams is here.

Per step, as in HF: add each beam's log-softmax to its running score, keep the top C
(beam, token) candidates, mark those that end (EOS, stop string, or the row's length
limit L <= N); the best W that do not end keep running, and ended candidates among the
top W enter the finished set with score / generated_length ** length_penalty. A row
stops once no running beam can beat its worst finished one (HF's heuristic, or the
canonical bound with `early_stopping="never"`), once W are finished with
`early_stopping=True`, or at its limit L: its search is HF's with max_new_tokens = L,
and its finished set stays as it was while longer rows go on.
The float32 arithmetic (the -1e9 masks included) follows HF so that ties break alike.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from pretty_jax.engine import parallel
from pretty_jax.engine.engine import FINISH_EOS, FINISH_LENGTH, FINISH_STOP, DecodeOutput, Engine, Params
from pretty_jax.engine.stopping import StopTables
from pretty_jax.engine.strategies import BeamSearch
from pretty_jax.engine.streams import Prefilled, Stream, feed, logits_after
from pretty_jax.models import KVCache

_NEG = -1.0e9


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class BeamState:
    """Carry of the beam loop; `running_*` are live beams, the rest finished ones.

    running_tokens / tokens: [B, W, N]; running_scores / scores: [B, W] float32;
    finished: [B, W] bool (slot holds a finished hypothesis); lengths, finish: [B, W]
    int32 length and reason of each finished hypothesis; improvable: [B, 1] bool;
    all_ended: [] bool, every candidate of the last step ended; limits: [B, 1] int32
    the most tokens a row may generate; next_logits: [B * W, V] the combined logits;
    stop_states: [B, W, num_stops]; streams: each stream's positions and cache, B * W rows.
    """

    step: jax.Array
    running_tokens: jax.Array
    running_scores: jax.Array
    tokens: jax.Array
    scores: jax.Array
    finished: jax.Array
    lengths: jax.Array
    finish: jax.Array
    improvable: jax.Array
    all_ended: jax.Array
    limits: jax.Array
    next_logits: jax.Array
    stop_states: jax.Array
    streams: tuple[Stream, ...]


def _gather_beams(x, beam_index_BK):
    """x[b, beam_index[b, k], ...] for [B, W, ...] arrays."""
    index = beam_index_BK.reshape(beam_index_BK.shape + (1,) * (x.ndim - 2))
    return jnp.take_along_axis(x, index, axis=1)


def _gather_rows(x_RX, beam_index_BW, num_beams):
    """Reorders the B * W rows of a cache array so row (b, w) comes from beam
    beam_index[b, w] of example b; stays within each example's rows."""
    x_BWX = x_RX.reshape((-1, num_beams) + x_RX.shape[1:])
    return _gather_beams(x_BWX, beam_index_BW).reshape(x_RX.shape)


class _Candidates(NamedTuple):
    """The top C (beam, token) extensions of one step, [B, C, ...]."""

    scores: jax.Array  # [B, C] float32 running score + token log-prob
    origin: jax.Array  # [B, C] the beam each extends
    tokens: jax.Array  # [B, C, N] the beam's tokens with the new one at `step`
    stop_states: jax.Array  # [B, C, num_stops]
    hit_eos: jax.Array  # [B, C] bool
    hit_stop: jax.Array  # [B, C] bool
    ends: jax.Array  # [B, C] bool: EOS, stop string or length N


def _candidates(engine: Engine, stops: StopTables, state: BeamState) -> _Candidates:
    """Each beam's log-softmax added to its score; the top C (beam, token) pairs and
    whether each ends the hypothesis."""
    W, step, eos_ids = engine.strategy.num_beams, state.step, engine.shape.eos_ids
    B, V = state.running_scores.shape[0], state.next_logits.shape[-1]
    C = max(2, 1 + len(eos_ids)) * W
    log_probs_BWV = jax.nn.log_softmax(state.next_logits).reshape(B, W, V)
    log_probs_BX = (log_probs_BWV + state.running_scores[:, :, None]).reshape(B, W * V)
    top_scores_BC, top_index_BC = jax.lax.top_k(log_probs_BX, C)
    origin_BC = top_index_BC // V
    token_BC = (top_index_BC % V).astype(jnp.int32)
    candidates_BCN = _gather_beams(state.running_tokens, origin_BC).at[:, :, step].set(token_BC)
    hit_eos_BC = jnp.isin(token_BC, jnp.asarray(eos_ids, jnp.int32))
    stop_states_BCS = _gather_beams(state.stop_states, origin_BC)
    flat_states, flat_hits = stops.advance(stop_states_BCS.reshape(B * C, -1), token_BC.reshape(-1))
    stop_states_BCS, hit_stop_BC = flat_states.reshape(B, C, -1), flat_hits.reshape(B, C)
    ends_BC = hit_eos_BC | hit_stop_BC | (step + 1 >= state.limits)
    return _Candidates(top_scores_BC, origin_BC, candidates_BCN, stop_states_BCS, hit_eos_BC, hit_stop_BC, ends_BC)


def _live_beams(num_beams: int, cand: _Candidates):
    """The best W candidates that do not end: (tokens [B, W, N], scores [B, W],
    origin beam [B, W], stop states [B, W, num_stops])."""
    live_scores_BC = cand.scores + cand.ends.astype(jnp.float32) * _NEG
    live_index_BW = jax.lax.top_k(live_scores_BC, num_beams)[1]
    return (
        _gather_beams(cand.tokens, live_index_BW),
        _gather_beams(live_scores_BC, live_index_BW),
        _gather_beams(cand.origin, live_index_BW),
        _gather_beams(cand.stop_states, live_index_BW),
    )


def _merge_finished(search: BeamSearch, state: BeamState, cand: _Candidates) -> dict[str, jax.Array]:
    """The finished set after this step: ended candidates among the top W join, with
    score / length ** length_penalty, if they beat what is there (and the row is open)."""
    W, step = search.num_beams, state.step
    B, C = cand.scores.shape
    just_finished_BC = cand.ends & (jnp.arange(C) < W)[None, :]
    finished_scores_BC = cand.scores / ((step + 1) ** search.length_penalty)
    rows_full_B1 = jnp.all(state.finished, axis=-1, keepdims=True) & (search.early_stopping is True)
    finished_scores_BC += rows_full_B1.astype(jnp.float32) * _NEG
    finished_scores_BC += (~state.improvable).astype(jnp.float32) * _NEG
    finished_scores_BC += (~just_finished_BC).astype(jnp.float32) * _NEG
    reason_BC = jnp.where(cand.hit_eos, FINISH_EOS, jnp.where(cand.hit_stop, FINISH_STOP, FINISH_LENGTH))
    keep_BW = jax.lax.top_k(jnp.concatenate([state.scores, finished_scores_BC], axis=1), W)[1]
    merge = lambda old, new: _gather_beams(jnp.concatenate([old, new], axis=1), keep_BW)  # noqa: E731
    return dict(
        tokens=merge(state.tokens, cand.tokens),
        scores=merge(state.scores, finished_scores_BC),
        finished=merge(state.finished, just_finished_BC),
        lengths=merge(state.lengths, jnp.full((B, C), step + 1, jnp.int32)),
        finish=merge(state.finish, reason_BC.astype(jnp.int32)),
    )


def _still_improvable(search: BeamSearch, state: BeamState, running_scores, finished, scores) -> jax.Array:
    """[B, 1]: could a live beam still beat the worst finished one? (HF's heuristic;
    never once the row reached its length limit.)"""
    if search.early_stopping == "never" and search.length_penalty > 0.0:
        best_length = state.limits
    else:
        best_length = state.step + 1
    best_running_B1 = running_scores[:, :1] / (best_length**search.length_penalty)
    worst_finished_BW = jnp.where(finished, jnp.min(scores, axis=1, keepdims=True), _NEG)
    beatable_B1 = jnp.any(best_running_B1 > worst_finished_BW, axis=-1, keepdims=True)
    return state.improvable & beatable_B1 & (state.step + 1 < state.limits)


def _advance_live(engine: Engine, params: Params, state: BeamState, running_tokens, live_origin_BW):
    """Reorders every stream's cache and positions to the live beams and feeds them
    their newest tokens: (combined next logits [B * W, V], the streams)."""
    W = engine.strategy.num_beams
    reorder = lambda x: _gather_rows(x, live_origin_BW, W) if x.ndim else x  # noqa: E731
    streams = tuple(jax.tree.map(reorder, stream) for stream in state.streams)
    next_token_R = running_tokens[:, :, state.step].reshape(-1)
    logits, streams = feed(engine.graphs, params, streams, next_token_R, jnp.ones_like(next_token_R, bool))
    steps_R = jnp.full(next_token_R.shape, state.step + 1, jnp.int32)
    return engine.rule.combine(logits, steps_R), streams


def _beam_step(engine: Engine, params: Params, stops: StopTables, state: BeamState) -> BeamState:
    search = engine.strategy
    cand = _candidates(engine, stops, state)
    running_tokens, running_scores, live_origin_BW, stop_states = _live_beams(search.num_beams, cand)
    finished = _merge_finished(search, state, cand)
    improvable = _still_improvable(search, state, running_scores, finished["finished"], finished["scores"])
    next_logits, streams = _advance_live(engine, params, state, running_tokens, live_origin_BW)
    if engine.mesh is not None:
        streams = tuple(dataclasses.replace(s, cache=parallel.constrain_cache(engine.mesh, s.cache)) for s in streams)
    return BeamState(
        step=state.step + 1,
        running_tokens=running_tokens,
        running_scores=running_scores,
        **finished,
        improvable=improvable,
        all_ended=jnp.all(cand.ends),
        limits=state.limits,
        next_logits=next_logits,
        stop_states=stop_states,
        streams=streams,
    )


def _keep_going(search: BeamSearch, state: BeamState) -> jax.Array:
    improvement_possible = jnp.any(state.improvable)
    open_beam = ~(jnp.all(state.finished) & (search.early_stopping is True))
    return improvement_possible & open_beam & ~state.all_ended


def _stream_from(block: Prefilled, max_new_tokens: int) -> Stream:
    """A prefilled block of R left-padded rows as a stream of R rows with room for
    `max_new_tokens` more columns after the P prefilled ones."""
    widen = lambda x, fill: jnp.pad(  # noqa: E731
        x, [(0, 0)] * (x.ndim - 2) + [(0, max_new_tokens), (0, 0)], constant_values=fill)
    cache = KVCache(
        keys=tuple(widen(k, 0) for k in block.keys),
        values=tuple(widen(v, 0) for v in block.values),
        positions=jnp.pad(block.positions, [(0, 0), (0, max_new_tokens)], constant_values=-1),
        end=jnp.int32(block.length),
    )
    return Stream(positions=jnp.sum(block.positions >= 0, axis=1).astype(jnp.int32), cache=cache)


@functools.partial(jax.jit, static_argnums=0)
def beam_search(engine: Engine, params: Params, blocks: tuple[Prefilled, ...], limit_B: jax.Array,
                stops: StopTables) -> DecodeOutput:
    """Beam search after each prefilled row (`engine.strategy` a `BeamSearch`; one
    block per stream, the same B rows); each row generates at most `limit_B[b]` tokens.

    Returns the best hypothesis per row as a `DecodeOutput` (with scores, the
    length-penalised score of each row's best hypothesis; no logprobs).
    """
    W, N = engine.strategy.num_beams, engine.shape.max_new_tokens
    B = blocks[0].positions.shape[0]
    streams, logits = [], []
    for graph, stream_params, block in zip(engine.graphs, params, blocks):
        logits.append(logits_after(graph, stream_params, block.hidden[:, -1]))
        streams.append(_stream_from(block, N))
    # Every beam starts from the same prefill: repeat each row W times.
    repeat = lambda x: jnp.repeat(x, W, axis=0) if x.ndim else x  # noqa: E731
    state = BeamState(
        step=jnp.zeros((), jnp.int32),
        running_tokens=jnp.full((B, W, N), engine.shape.pad_id, jnp.int32),
        running_scores=jnp.zeros((B, W), jnp.float32).at[:, 1:].set(_NEG),
        tokens=jnp.full((B, W, N), engine.shape.pad_id, jnp.int32),
        scores=jnp.full((B, W), _NEG, jnp.float32),
        finished=jnp.zeros((B, W), bool),
        lengths=jnp.zeros((B, W), jnp.int32),
        finish=jnp.full((B, W), FINISH_LENGTH, jnp.int32),
        improvable=jnp.ones((B, 1), bool),
        all_ended=jnp.zeros((), bool),
        limits=limit_B[:, None],
        next_logits=repeat(engine.rule.combine(tuple(logits), jnp.zeros((B,), jnp.int32))),
        stop_states=jnp.zeros((B, W, stops.num_stops), jnp.int32),
        streams=tuple(jax.tree.map(repeat, stream) for stream in streams),
    )
    body = functools.partial(_beam_step, engine, params, stops)
    state = jax.lax.while_loop(functools.partial(_keep_going, engine.strategy), body, state)
    best_tokens = state.tokens[:, 0]
    length_B = state.lengths[:, 0]
    best_tokens = jnp.where(jnp.arange(N)[None, :] < length_B[:, None], best_tokens, engine.shape.pad_id)
    return DecodeOutput(tokens=best_tokens, lengths=length_B, finish=state.finish[:, 0], scores=state.scores[:, 0])
