"""Distribution alignment between a foundation model (LM) and its SFT model.

For a trajectory y after a prefix x (prompt + prior tokens), both models are
teacher-forced through x + y in one forward pass each, and at every step t (the
position predicting y_t) their next-token distributions are compared:

  sft_rank_in_lm  rank of the SFT model's argmax token in the LM's distribution
                  (tokens with a strictly higher LM logit; top-K agreement is rank < K)
  p_lm_own        probability the LM gives its own argmax token
  p_sft_own       probability the SFT model gives its own argmax token
  p_lm_of_sft     probability the LM gives the SFT model's argmax token
  kl_sft_lm       KL(p_SFT || p_LM) over the whole vocabulary
  kl_lm_sft       KL(p_LM || p_SFT)
  js              Jensen-Shannon divergence (natural log)
  tv              total variation distance

and, when asked for (`top_tokens=N`), each model's N most probable next tokens:

  lm_top_ids, sft_top_ids              [T, N] int32, most probable first
  lm_top_logprobs, sft_top_logprobs    [T, N] float32, their log-probabilities

(`jax.lax.top_k` inside the same chunked pass, so only [B, T, N] reaches the host,
never [B, T, V]: what the explorer page shows on a 250k vocabulary.)

All in float32 log-space. Logits never exist for all steps at once: the final hidden
states [B, L, D] of both models are computed once, then the steps are processed in
chunks of C inside `lax.map`, so at most 2 x [B, C, V] logits are alive (a 250k
vocabulary stays small). Rows are laid out so every row's step t sits in the same
column: [left padding | prompt + prior | trajectory | right padding]; examples are
grouped into batches by length (`length_groups`) so that padding stays small.

Each model may have its own prefix (a chat SFT model after its chat-formatted prompt,
the foundation after the plain prompt + prior): each gets its own layout, and step t
of one is compared with step t of the other, by index in the trajectory, whatever the
absolute positions.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from pretty_jax.core.errors import UserError
from pretty_jax.core.progress import Progress
from pretty_jax.engine import parallel
from pretty_jax.engine.batching import bucket_length, positions_from_mask
from pretty_jax.models import Graph, Model

STATISTICS = ("sft_rank_in_lm", "p_lm_own", "p_sft_own", "p_lm_of_sft", "kl_sft_lm", "kl_lm_sft", "js", "tv")
TOP_FIELDS = ("lm_top_ids", "lm_top_logprobs", "sft_top_ids", "sft_top_logprobs")


def step_statistics(logits_lm: jax.Array, logits_sft: jax.Array) -> dict[str, jax.Array]:
    """Every statistic for logits [..., V] of the two models at the same positions.

    Returns a dict of arrays shaped like the logits without their last axis.
    """
    logits_lm = logits_lm.astype(jnp.float32)
    logits_sft = logits_sft.astype(jnp.float32)
    logp_lm = jax.nn.log_softmax(logits_lm, axis=-1)
    logp_sft = jax.nn.log_softmax(logits_sft, axis=-1)
    p_lm, p_sft = jnp.exp(logp_lm), jnp.exp(logp_sft)
    sft_choice = jnp.argmax(logits_sft, axis=-1)[..., None]
    lm_logit_of_sft = jnp.take_along_axis(logits_lm, sft_choice, axis=-1)
    log_mixture = jnp.logaddexp(logp_lm, logp_sft) - jnp.log(2.0)
    return {
        "sft_rank_in_lm": jnp.sum(logits_lm > lm_logit_of_sft, axis=-1).astype(jnp.int32),
        "p_lm_own": jnp.exp(jnp.max(logp_lm, axis=-1)),
        "p_sft_own": jnp.exp(jnp.max(logp_sft, axis=-1)),
        "p_lm_of_sft": jnp.exp(jnp.take_along_axis(logp_lm, sft_choice, axis=-1)[..., 0]),
        "kl_sft_lm": jnp.sum(p_sft * (logp_sft - logp_lm), axis=-1),
        "kl_lm_sft": jnp.sum(p_lm * (logp_lm - logp_sft), axis=-1),
        "js": 0.5 * jnp.sum(p_sft * (logp_sft - log_mixture) + p_lm * (logp_lm - log_mixture), axis=-1),
        "tv": 0.5 * jnp.sum(jnp.abs(p_lm - p_sft), axis=-1),
    }


def top_tokens(logits: jax.Array, count: int) -> tuple[jax.Array, jax.Array]:
    """The `count` most probable tokens of logits [..., V]: ids [..., count] int32 and
    their log-probabilities [..., count] float32, most probable first."""
    logits = logits.astype(jnp.float32)
    top_logits, ids = jax.lax.top_k(logits, count)
    return ids.astype(jnp.int32), top_logits - jax.nn.logsumexp(logits, axis=-1, keepdims=True)


def _hidden(graph: Graph, params, tokens_BL, positions_BL, mask_BL):
    h_BLD, _ = nnx.merge(graph.graphdef, params).hidden_states(tokens_BL, positions_BL, mask_BL)
    return h_BLD


def _logits(graph: Graph, params, h_BTD):
    return nnx.merge(graph.graphdef, params).logits(h_BTD)


@functools.partial(
    jax.jit,
    static_argnames=("lm_graph", "sft_graph", "first_step", "sft_first_step", "num_steps", "chunk", "top_n"),
)
def _batch_statistics(
    lm_graph: Graph,
    lm_params: nnx.State,
    sft_graph: Graph,
    sft_params: nnx.State,
    tokens_BL: jax.Array,
    mask_BL: jax.Array,
    sft_tokens_BM: jax.Array,
    sft_mask_BM: jax.Array,
    *,
    first_step: int,
    sft_first_step: int,
    num_steps: int,
    chunk: int,
    top_n: int,
) -> dict[str, jax.Array]:
    """Statistics [B, num_steps] (top tokens [B, num_steps, top_n] when top_n > 0) for
    the steps at the LM's columns first_step, first_step+1, ... and the SFT model's
    columns sft_first_step, ... of its own layout [B, M] (num_steps is a multiple of chunk)."""

    def hidden(graph, params, tokens, mask, first):
        h_BLD = _hidden(graph, params, tokens, positions_from_mask(mask), mask)
        return h_BLD[:, first : first + num_steps]

    h_lm_BTD = hidden(lm_graph, lm_params, tokens_BL, mask_BL, first_step)
    h_sft_BTD = hidden(sft_graph, sft_params, sft_tokens_BM, sft_mask_BM, sft_first_step)
    batch, _, width = h_lm_BTD.shape

    def by_chunk(h_BTD):  # [B, T, D] -> [T // C, B, C, D]
        return h_BTD.reshape(batch, num_steps // chunk, chunk, -1).transpose(1, 0, 2, 3)

    def one_chunk(h_pair):
        h_lm_BCD, h_sft_BCD = h_pair
        logits_lm_BCV, logits_sft_BCV = _logits(lm_graph, lm_params, h_lm_BCD), _logits(sft_graph, sft_params, h_sft_BCD)
        stats = step_statistics(logits_lm_BCV, logits_sft_BCV)
        if top_n:
            stats["lm_top_ids"], stats["lm_top_logprobs"] = top_tokens(logits_lm_BCV, top_n)
            stats["sft_top_ids"], stats["sft_top_logprobs"] = top_tokens(logits_sft_BCV, top_n)
        return stats

    stats = jax.lax.map(one_chunk, (by_chunk(h_lm_BTD), by_chunk(h_sft_BTD)))  # [T // C, B, C, ...]
    return {
        name: jnp.swapaxes(value, 0, 1).reshape(batch, num_steps, *value.shape[3:]) for name, value in stats.items()
    }


def length_groups(
    prefixes: Sequence[Sequence[int]], trajectories: Sequence[Sequence[int]], batch_size: int
) -> list[list[int]]:
    """Example indices batch by batch, ordered by (bucketed prefix length, trajectory
    length), so the rows of a batch have similar widths and padding stays small."""
    order = sorted(
        range(len(prefixes)), key=lambda i: (bucket_length(max(len(prefixes[i]), 1)), len(trajectories[i]), i)
    )
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def check_same_tokenizer(lm_tokenizer, sft_tokenizer, lm_name: str, sft_name: str) -> None:
    """Refuses two tokenizers that would make token-level comparisons meaningless."""
    lm_vocab, sft_vocab = lm_tokenizer.get_vocab(), sft_tokenizer.get_vocab()
    if len(lm_vocab) != len(sft_vocab):
        raise UserError(
            f"the foundation tokenizer ({lm_name}) has {len(lm_vocab)} tokens and the SFT tokenizer "
            f"({sft_name}) {len(sft_vocab)}; token-level statistics need the same tokenizer"
        )
    lm_by_id = {i: t for t, i in lm_vocab.items()}
    sft_by_id = {i: t for t, i in sft_vocab.items()}
    for token_id in sorted(lm_by_id):
        if lm_by_id[token_id] != sft_by_id.get(token_id):
            raise UserError(
                f"the tokenizers differ at id {token_id}: {lm_by_id[token_id]!r} in {lm_name}, "
                f"{sft_by_id.get(token_id)!r} in {sft_name}; token-level statistics need the same tokenizer"
            )


class AlignmentScorer:
    """Teacher-forced statistics of (prefix, trajectory) pairs, batch by batch.

    top_tokens: how many most probable next tokens of each model to keep per step
    (`TOP_FIELDS`; 0 keeps none)."""

    def __init__(
        self,
        foundation: Model,
        sft: Model,
        mesh: Mesh | None = None,
        batch_size: int = 8,
        chunk: int = 16,
        pad_id: int = 0,
        top_tokens: int = 0,
    ):
        if foundation.config.vocab_size != sft.config.vocab_size:
            raise UserError(
                f"vocabulary sizes differ: foundation {foundation.config.vocab_size}, "
                f"SFT {sft.config.vocab_size}; token-level statistics need the same vocabulary"
            )
        data = 1 if mesh is None else mesh.shape[parallel.DATA]
        if batch_size % data:
            raise UserError(f"batch_size={batch_size} must be a multiple of the mesh's data axis ({data} devices)")
        self.foundation, self.sft, self.mesh = foundation, sft, mesh
        if not 0 <= top_tokens <= foundation.config.vocab_size:
            raise UserError(f"top_tokens={top_tokens}: give 0 (none) up to the vocabulary size")
        self.batch_size, self.chunk, self.pad_id, self.top_tokens = batch_size, chunk, pad_id, top_tokens

    def score(
        self,
        prefixes: Sequence[Sequence[int]],
        trajectories: Sequence[Sequence[int]],
        sft_prefixes: Sequence[Sequence[int]] | None = None,
    ) -> list[dict[str, np.ndarray]]:
        """Per example (in the given order), each statistic over its trajectory steps
        ([len(trajectory)], top tokens [len(trajectory), top_tokens]).

        sft_prefixes: the SFT model's own prefix per example (default: `prefixes`)."""
        sft_prefixes = prefixes if sft_prefixes is None else sft_prefixes
        results: list[dict[str, np.ndarray] | None] = [None] * len(prefixes)
        with Progress(len(prefixes), "alignment statistics") as progress:
            for group in length_groups(prefixes, trajectories, self.batch_size):
                scored = self._score_batch([list(prefixes[i]) for i in group], [list(trajectories[i]) for i in group],
                                           [list(sft_prefixes[i]) for i in group])
                for i, stats in zip(group, scored):
                    results[i] = stats
                progress.update(len(group))
        return results

    def _layout(self, prefixes, trajectories) -> tuple[np.ndarray, np.ndarray, int, int]:
        """tokens/mask [B, P + T]: prefixes left-padded to end at column P, trajectories
        starting there and right-padded. Step t is predicted at column P - 1 + t."""
        prefix_len = bucket_length(max(len(p) for p in prefixes))
        steps = -(-max(max(len(t) for t in trajectories), 1) // self.chunk) * self.chunk
        tokens = np.full((len(prefixes), prefix_len + steps), self.pad_id, np.int32)
        mask = np.zeros_like(tokens)
        for row, (prefix, trajectory) in enumerate(zip(prefixes, trajectories)):
            tokens[row, prefix_len - len(prefix) : prefix_len] = prefix
            tokens[row, prefix_len : prefix_len + len(trajectory)] = trajectory
            mask[row, prefix_len - len(prefix) : prefix_len + len(trajectory)] = 1
        return tokens, mask, prefix_len, steps

    def _score_batch(self, prefixes, trajectories, sft_prefixes) -> list[dict[str, np.ndarray]]:
        real = len(prefixes)
        if any(len(p) == 0 for p in prefixes + sft_prefixes):
            raise UserError("a prompt is empty; every example needs at least one prompt token")
        padding = self.batch_size - real
        prefixes = prefixes + [prefixes[0]] * padding
        sft_prefixes = sft_prefixes + [sft_prefixes[0]] * padding
        trajectories = trajectories + [[]] * padding
        tokens, mask, prefix_len, steps = self._layout(prefixes, trajectories)
        sft_tokens, sft_mask, sft_prefix_len, _ = self._layout(sft_prefixes, trajectories)
        batch = functools.partial(parallel.device_batch, self.mesh)
        stats = _batch_statistics(
            self.foundation.graph, self.foundation.params, self.sft.graph, self.sft.params,
            batch(tokens), batch(mask), batch(sft_tokens), batch(sft_mask),
            first_step=prefix_len - 1, sft_first_step=sft_prefix_len - 1, num_steps=steps, chunk=self.chunk,
            top_n=self.top_tokens,
        )
        stats = parallel.to_host(stats)
        return [
            {name: np.asarray(values[row, : len(trajectories[row])]) for name, values in stats.items()}
            for row in range(real)
        ]
