"""Beam search on device, step for step the algorithm of HF transformers' `generate`.

Letters: B examples, W beams, C = max(2, 1 + #EOS) * W candidates kept per step,
N = max_new_tokens, V vocabulary. The KV cache holds B * W rows (example-major).

Per step, as in HF: add each beam's log-softmax to its running score, keep the top C
(beam, token) candidates, mark those that end (EOS, stop string, or length N); the best
W that do not end keep running, and ended candidates among the top W enter the
finished set with score / generated_length ** length_penalty. A row stops once no
running beam can beat its worst finished one (HF's heuristic, or the canonical bound
with `early_stopping="never"`), or once W are finished with `early_stopping=True`.
The float32 arithmetic (the -1e9 masks included) follows HF so that ties break alike.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh

from pretty_jax.engine import parallel
from pretty_jax.engine.decode import (
    FINISH_EOS,
    FINISH_LENGTH,
    FINISH_STOP,
    DecodeOutput,
    LoopStatics,
    prefill,
)
from pretty_jax.engine.stopping import advance_states
from pretty_jax.engine.strategies import BeamSearch
from pretty_jax.models import KVCache, forward_last

_NEG = -1.0e9


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class BeamState:
    """Carry of the beam loop; `running_*` are live beams, the rest finished ones.

    running_tokens / tokens: [B, W, N]; running_scores / scores: [B, W] float32;
    finished: [B, W] bool (slot holds a finished hypothesis); lengths, finish: [B, W]
    int32 length and reason of each finished hypothesis; improvable: [B, 1] bool;
    all_ended: [] bool, every candidate of the last step ended;
    next_logits: [B * W, V]; positions: [B * W]; stop_states: [B, W, num_stops].
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
    next_logits: jax.Array
    positions: jax.Array
    stop_states: jax.Array
    cache: KVCache


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


def _candidates(search: BeamSearch, settings: LoopStatics, stop_tables, state: BeamState) -> _Candidates:
    """Each beam's log-softmax added to its score; the top C (beam, token) pairs and
    whether each ends the hypothesis."""
    W, step = search.num_beams, state.step
    B, V = state.running_scores.shape[0], state.next_logits.shape[-1]
    C = max(2, 1 + len(settings.eos_ids)) * W
    log_probs_BWV = jax.nn.log_softmax(state.next_logits).reshape(B, W, V)
    log_probs_BX = (log_probs_BWV + state.running_scores[:, :, None]).reshape(B, W * V)
    top_scores_BC, top_index_BC = jax.lax.top_k(log_probs_BX, C)
    origin_BC = top_index_BC // V
    token_BC = (top_index_BC % V).astype(jnp.int32)
    candidates_BCN = _gather_beams(state.running_tokens, origin_BC).at[:, :, step].set(token_BC)
    hit_eos_BC = jnp.isin(token_BC, jnp.asarray(settings.eos_ids, jnp.int32))
    stop_states_BCS = _gather_beams(state.stop_states, origin_BC)
    hit_stop_BC = jnp.zeros_like(hit_eos_BC)
    if stop_tables is not None:
        flat_states, flat_hits = advance_states(*stop_tables, stop_states_BCS.reshape(B * C, -1), token_BC.reshape(-1))
        stop_states_BCS, hit_stop_BC = flat_states.reshape(B, C, -1), flat_hits.reshape(B, C)
    ends_BC = hit_eos_BC | hit_stop_BC | (step + 1 >= settings.max_new_tokens)
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


def _still_improvable(search: BeamSearch, settings: LoopStatics, state: BeamState, running_scores, finished,
                      scores) -> jax.Array:
    """[B, 1]: could a live beam still beat the worst finished one? (HF's heuristic.)"""
    if search.early_stopping == "never" and search.length_penalty > 0.0:
        best_length = settings.max_new_tokens
    else:
        best_length = state.step + 1
    best_running_B1 = running_scores[:, :1] / (best_length**search.length_penalty)
    worst_finished_BW = jnp.where(finished, jnp.min(scores, axis=1, keepdims=True), _NEG)
    return state.improvable & jnp.any(best_running_B1 > worst_finished_BW, axis=-1, keepdims=True)


def _advance_live(graphdef, params, num_beams: int, state: BeamState, running_tokens, live_origin_BW):
    """Reorders the cache and positions to the live beams and runs their newest tokens:
    (next logits [B * W, V], cache, positions [B * W] of the token after)."""
    cache = jax.tree.map(lambda x: _gather_rows(x, live_origin_BW, num_beams) if x.ndim else x, state.cache)
    positions = _gather_rows(state.positions, live_origin_BW, num_beams)
    next_token_R = running_tokens[:, :, state.step].reshape(-1)
    next_logits, cache = forward_last(
        graphdef, params, next_token_R[:, None], positions[:, None], jnp.ones_like(next_token_R)[:, None], cache
    )
    return next_logits, cache, positions + 1


def _beam_step(graphdef, params, search: BeamSearch, settings: LoopStatics, stop_tables, mesh, state: BeamState):
    cand = _candidates(search, settings, stop_tables, state)
    running_tokens, running_scores, live_origin_BW, stop_states = _live_beams(search.num_beams, cand)
    finished = _merge_finished(search, state, cand)
    improvable = _still_improvable(search, settings, state, running_scores, finished["finished"], finished["scores"])
    next_logits, cache, positions = _advance_live(graphdef, params, search.num_beams, state, running_tokens,
                                                  live_origin_BW)
    return BeamState(
        step=state.step + 1,
        running_tokens=running_tokens,
        running_scores=running_scores,
        **finished,
        improvable=improvable,
        all_ended=jnp.all(cand.ends),
        next_logits=next_logits,
        positions=positions,
        stop_states=stop_states,
        cache=parallel.constrain_cache(mesh, cache),
    )


def _keep_going(search: BeamSearch, state: BeamState) -> jax.Array:
    improvement_possible = jnp.any(state.improvable)
    open_beam = ~(jnp.all(state.finished) & (search.early_stopping is True))
    return improvement_possible & open_beam & ~state.all_ended


@functools.partial(jax.jit, static_argnames=("graphdef", "search", "settings", "mesh"))
def beam_decode(
    graphdef: nnx.GraphDef,
    params: nnx.State,
    tokens_BT: jax.Array,
    mask_BT: jax.Array,
    stop_tables: tuple[jax.Array, jax.Array] | None,
    *,
    search: BeamSearch,
    settings: LoopStatics,
    mesh: Mesh | None,
) -> DecodeOutput:
    """Beam search after each left-padded row.

    Returns the best hypothesis per row as a `DecodeOutput` (with scores, the
    length-penalised score of each row's best hypothesis; no logprobs).
    """
    W, N = search.num_beams, settings.max_new_tokens
    logits_BV, positions_B, cache = prefill(graphdef, params, tokens_BT, mask_BT, settings.cache_len, mesh)
    B = tokens_BT.shape[0]
    # Every beam starts from the same prefill: repeat each row W times.
    repeat = lambda x: jnp.repeat(x, W, axis=0)  # noqa: E731
    cache = jax.tree.map(lambda x: repeat(x) if x.ndim else x, cache)
    num_stops = 0 if stop_tables is None else stop_tables[0].shape[0]
    state = BeamState(
        step=jnp.zeros((), jnp.int32),
        running_tokens=jnp.full((B, W, N), settings.pad_id, jnp.int32),
        running_scores=jnp.zeros((B, W), jnp.float32).at[:, 1:].set(_NEG),
        tokens=jnp.full((B, W, N), settings.pad_id, jnp.int32),
        scores=jnp.full((B, W), _NEG, jnp.float32),
        finished=jnp.zeros((B, W), bool),
        lengths=jnp.zeros((B, W), jnp.int32),
        finish=jnp.full((B, W), FINISH_LENGTH, jnp.int32),
        improvable=jnp.ones((B, 1), bool),
        all_ended=jnp.zeros((), bool),
        next_logits=repeat(logits_BV),
        positions=repeat(positions_B),
        stop_states=jnp.zeros((B, W, num_stops), jnp.int32),
        cache=parallel.constrain_cache(mesh, cache),
    )
    body = functools.partial(_beam_step, graphdef, params, search, settings, stop_tables, mesh)
    state = jax.lax.while_loop(functools.partial(_keep_going, search), body, state)
    best_tokens = state.tokens[:, 0]
    length_B = state.lengths[:, 0]
    best_tokens = jnp.where(jnp.arange(N)[None, :] < length_B[:, None], best_tokens, settings.pad_id)
    return DecodeOutput(tokens=best_tokens, lengths=length_B, finish=state.finish[:, 0], scores=state.scores[:, 0])
