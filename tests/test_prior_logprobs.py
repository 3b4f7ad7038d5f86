"""experiments/prior_logprobs.py: candidate log-probs and adaptive SFT prior lengths against a NumPy
computation from each model's full, unpadded logits."""

from __future__ import annotations

import numpy as np
import pytest

from pretty_jax.checkpoints import loading
from pretty_jax.core.errors import UserError
from pretty_jax.engine.batching import left_pad
from pretty_jax.experiments.prior_logprobs import (
    adaptive_prior_lengths,
    continuation_logprobs,
)
from pretty_jax.models import forward

PREFIXES = [[1, 45, 49, 12, 7], [1, 15], [1, 30, 31, 32, 33, 34, 35, 36, 37], [1, 60, 61]]
CONTINUATIONS = [[20, 21, 22], [5], [], [40, 41, 42, 43, 44, 45]]


@pytest.fixture(scope="module")
def models(jax_checkpoint, jax_sft_stand_in):
    return loading.load_model(jax_checkpoint("llama"), "float32"), loading.load_model(jax_sft_stand_in("llama"), "float32")


def _log_softmax(logits):
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def _full_logits(model, sequence) -> np.ndarray:
    """Logits [T, V] of one unpadded sequence, as a plain forward gives them."""
    tokens, mask, positions = left_pad([sequence], pad_id=0)
    return np.asarray(forward(model.graphdef, model.params, tokens, positions, mask)[0], np.float64)[0]


def test_continuation_logprobs_equal_numpy_from_full_logits(models):
    foundation, _ = models
    got = continuation_logprobs(foundation, PREFIXES, CONTINUATIONS, batch_size=3)  # a padded last batch
    for prefix, continuation, logprobs in zip(PREFIXES, CONTINUATIONS, got):
        logp = _log_softmax(_full_logits(foundation, prefix + continuation))
        expected = [logp[len(prefix) - 1 + j, token] for j, token in enumerate(continuation)]
        assert logprobs.shape == (len(continuation),)
        np.testing.assert_allclose(logprobs, expected, atol=2e-5)


def test_adaptive_length_is_the_first_step_below_the_threshold(models):
    foundation, sft = models
    max_tokens = 4
    sft_tokens = [[20, 21, 22, 23, 24], [5], [40, 41, 42, 43], [50, 51]]
    expected_kl = []
    for prefix, tokens in zip(PREFIXES, sft_tokens):
        sequence = prefix + tokens[:max_tokens]
        logp_lm = _log_softmax(_full_logits(foundation, sequence))
        logp_sft = _log_softmax(_full_logits(sft, sequence))
        steps = range(len(prefix) - 1, len(prefix) + min(len(tokens), max_tokens))
        expected_kl.append(np.array([np.sum(np.exp(logp_sft[t]) * (logp_sft[t] - logp_lm[t])) for t in steps]))
    # A threshold between the KLs: some rows stop early, some use every token they have.
    threshold = float(np.median(np.concatenate(expected_kl)))
    chosen, kls = adaptive_prior_lengths(foundation, sft, PREFIXES, sft_tokens, max_tokens, threshold, batch_size=2)
    for kl, expected, k, tokens in zip(kls, expected_kl, chosen, sft_tokens):
        np.testing.assert_allclose(kl, expected, rtol=1e-4, atol=1e-6)
        below = np.flatnonzero(expected < threshold)
        assert k == (below[0] if below.size else min(len(tokens), max_tokens))
    assert len(set(chosen)) > 1, chosen
    none_needed, _ = adaptive_prior_lengths(foundation, sft, PREFIXES, sft_tokens, max_tokens, np.inf, batch_size=4)
    assert none_needed == [0, 0, 0, 0]
    all_used, _ = adaptive_prior_lengths(foundation, sft, PREFIXES, sft_tokens, max_tokens, -1.0, batch_size=4)
    assert all_used == [4, 1, 4, 2]


def test_bad_arguments_are_refused(models):
    foundation, sft = models
    with pytest.raises(UserError, match="prompt is empty"):
        continuation_logprobs(foundation, [[]], [[3]])
    with pytest.raises(UserError, match="max_tokens=0"):
        adaptive_prior_lengths(foundation, sft, PREFIXES, CONTINUATIONS, 0, 1.0)
