"""Teacher-forced scoring of short continuations after a prefix, on device.

Two questions a run asks of its models before it decodes with a prior:

- `continuation_logprobs`: how probable does a model find a candidate prior after the
  prompt? One forward over prefix + candidate gives every candidate token's log-prob.
- `adaptive_prior_lengths`: after how many of the SFT model's first tokens does the
  foundation's next-token distribution come close to the SFT model's? One forward of
  each model over prompt + the SFT output's first M tokens gives KL(SFT||LM) after
  j = 0..M of them; the smallest j with KL below a threshold is chosen on device.

Rows are laid out as in alignment/statistics.py: [left padding | prefix | continuation |
right padding], every prefix ending at column P, so the distribution after prefix +
first j continuation tokens sits at column P - 1 + j for every row. Only the C columns
of interest reach the vocabulary projection: logits are [B, C, V] with C the (short,
bucketed) continuation length, never [B, L, V].

Dimensions: B rows, L = P + C columns, D model width, V vocabulary, C scored columns.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from pretty_jax.alignment.statistics import step_statistics
from pretty_jax.core.errors import UserError
from pretty_jax.engine import parallel
from pretty_jax.engine.batching import bucket_length, positions_from_mask
from pretty_jax.models import Graph, Model

MIN_COLUMNS = 4


def _window_logits(graph: Graph, params, tokens_BL, mask_BL, first: int, width: int) -> jax.Array:
    """Float32 logits [B, width, V] of columns first .. first + width - 1."""
    model = nnx.merge(graph.graphdef, params)
    h_BLD, _ = model.hidden_states(tokens_BL, positions_from_mask(mask_BL), mask_BL)
    return model.logits(h_BLD[:, first : first + width]).astype(jnp.float32)


@functools.partial(jax.jit, static_argnames=("graph", "prefix_len", "width"))
def _continuation_logprobs(graph: Graph, params, tokens_BL, mask_BL, *, prefix_len: int, width: int) -> jax.Array:
    """log p(token at column P + c | columns before it) [B, width] for c = 0..width-1."""
    logp_BCV = jax.nn.log_softmax(_window_logits(graph, params, tokens_BL, mask_BL, prefix_len - 1, width), -1)
    targets_BC = tokens_BL[:, prefix_len : prefix_len + width]
    return jnp.take_along_axis(logp_BCV, targets_BC[..., None], axis=-1)[..., 0]


@functools.partial(jax.jit, static_argnames=("lm_graph", "sft_graph", "prefix_len", "max_tokens"))
def _adaptive_lengths(lm_graph, lm_params, sft_graph, sft_params, tokens_BL, mask_BL, available_B, max_kl, *,
                      prefix_len: int, max_tokens: int) -> tuple[jax.Array, jax.Array]:
    """(chosen k [B] int32, KL(SFT||LM) [B, max_tokens + 1] after j = 0..max_tokens tokens).

    k is the smallest j <= available_B with KL_j < max_kl, else available_B (every
    SFT token the row has, up to max_tokens)."""
    width = max_tokens + 1
    logits_lm = _window_logits(lm_graph, lm_params, tokens_BL, mask_BL, prefix_len - 1, width)
    logits_sft = _window_logits(sft_graph, sft_params, tokens_BL, mask_BL, prefix_len - 1, width)
    kl_BJ = step_statistics(logits_lm, logits_sft)["kl_sft_lm"]
    meets_BJ = (kl_BJ < max_kl) & (jnp.arange(width)[None, :] <= available_B[:, None])
    first_BJ = jnp.argmax(meets_BJ.astype(jnp.int32), axis=1)  # the first True column
    chosen_B = jnp.where(jnp.any(meets_BJ, axis=1), first_BJ, available_B)
    return chosen_B.astype(jnp.int32), kl_BJ


def _layout(prefixes, continuations, width: int, pad_id: int) -> tuple[np.ndarray, np.ndarray, int]:
    """tokens/mask [B, P + width], prefixes ending at column P; returns P too."""
    if any(len(p) == 0 for p in prefixes):
        raise UserError("a prompt is empty; every example needs at least one prompt token")
    prefix_len = bucket_length(max(len(p) for p in prefixes))
    tokens = np.full((len(prefixes), prefix_len + width), pad_id, np.int32)
    mask = np.zeros_like(tokens)
    for row, (prefix, continuation) in enumerate(zip(prefixes, continuations)):
        tokens[row, prefix_len - len(prefix) : prefix_len] = prefix
        tokens[row, prefix_len : prefix_len + len(continuation)] = continuation
        mask[row, prefix_len - len(prefix) : prefix_len + len(continuation)] = 1
    return tokens, mask, prefix_len


def _batches(count: int, batch_size: int):
    for start in range(0, count, batch_size):
        yield range(start, min(start + batch_size, count))


def _check_batch(mesh: Mesh | None, batch_size: int) -> None:
    data = 1 if mesh is None else mesh.shape[parallel.DATA]
    if batch_size < 1 or batch_size % data:
        raise UserError(f"batch_size={batch_size} must be a positive multiple of the mesh's data axis ({data})")


def continuation_logprobs(
    model: Model,
    prefixes: Sequence[Sequence[int]],
    continuations: Sequence[Sequence[int]],
    mesh: Mesh | None = None,
    batch_size: int = 8,
    pad_id: int = 0,
) -> list[np.ndarray]:
    """Per row, the log-prob [len(continuation)] float32 the model gives each token of
    `continuations[i]` after `prefixes[i]` and the continuation tokens before it."""
    _check_batch(mesh, batch_size)
    results: list[np.ndarray] = []
    for rows in _batches(len(prefixes), batch_size):
        batch_prefixes = [prefixes[i] for i in rows] + [prefixes[rows[0]]] * (batch_size - len(rows))
        batch_continuations = [continuations[i] for i in rows] + [[]] * (batch_size - len(rows))
        width = max(MIN_COLUMNS, 1 << (max(len(c) for c in batch_continuations) - 1).bit_length())
        tokens, mask, prefix_len = _layout(batch_prefixes, batch_continuations, width, pad_id)
        logprobs = parallel.to_host(_continuation_logprobs(
            model.graph, model.params, parallel.device_batch(mesh, tokens), parallel.device_batch(mesh, mask),
            prefix_len=prefix_len, width=width))
        results += [np.asarray(logprobs[row, : len(batch_continuations[row])]) for row in range(len(rows))]
    return results


def adaptive_prior_lengths(
    foundation: Model,
    sft: Model,
    prefixes: Sequence[Sequence[int]],
    sft_tokens: Sequence[Sequence[int]],
    max_tokens: int,
    max_kl: float,
    mesh: Mesh | None = None,
    batch_size: int = 8,
    pad_id: int = 0,
) -> tuple[list[int], list[np.ndarray]]:
    """Per example, how many of its SFT tokens to prefill: the smallest j in
    0..min(max_tokens, len(sft_tokens[i])) after which KL(SFT||LM) of the next-token
    distributions is below `max_kl`, else all of them up to `max_tokens`. Also returns
    each example's KL after j = 0..available tokens ([available + 1] float32)."""
    if foundation.config.vocab_size != sft.config.vocab_size:
        raise UserError(f"vocabulary sizes differ: foundation {foundation.config.vocab_size}, SFT "
                        f"{sft.config.vocab_size}; the adaptive SFT prior compares distributions token by token")
    if max_tokens < 1:
        raise UserError(f"max_tokens={max_tokens} must be >= 1")
    _check_batch(mesh, batch_size)
    chosen, divergences = [], []
    for rows in _batches(len(prefixes), batch_size):
        batch_prefixes = [prefixes[i] for i in rows] + [prefixes[rows[0]]] * (batch_size - len(rows))
        batch_priors = [list(sft_tokens[i])[:max_tokens] for i in rows] + [[]] * (batch_size - len(rows))
        tokens, mask, prefix_len = _layout(batch_prefixes, batch_priors, max_tokens, pad_id)
        available = np.array([len(p) for p in batch_priors], np.int32)
        k, kl = parallel.to_host(_adaptive_lengths(
            foundation.graph, foundation.params, sft.graph, sft.params,
            parallel.device_batch(mesh, tokens), parallel.device_batch(mesh, mask),
            parallel.device_batch(mesh, available), np.float32(max_kl), prefix_len=prefix_len, max_tokens=max_tokens))
        chosen += [int(k[row]) for row in range(len(rows))]
        divergences += [np.asarray(kl[row, : available[row] + 1]) for row in range(len(rows))]
    return chosen, divergences
