"""Greedy's argmax and the sampling filters against NumPy, and the strategies' argument checks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pretty_jax.core.errors import UserError
from pretty_jax.engine.strategies import BeamSearch, Greedy, Sampling, _top_p_filter


def test_greedy_picks_numpys_argmax_first_of_ties_and_first_nan():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 1000)).astype(np.float32)
    logits[1, [7, 400, 999]] = 9.0  # a tie: the first index wins
    logits[2, [3, 500]] = np.nan  # NaN: argmax returns the first NaN
    logits[3] = -np.inf  # nothing finite: index 0
    logits[4, 10] = np.inf
    logits[5] = 0.0
    ours = np.asarray(jax.jit(Greedy().next_token)(jnp.asarray(logits), None))
    np.testing.assert_array_equal(ours, np.argmax(logits, axis=-1))
    assert ours.dtype == np.int32


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = np.log(np.array([[0.5, 0.2, 0.15, 0.1, 0.05], [0.05, 0.12, 0.6, 0.15, 0.08]], np.float32))
    kept = np.isfinite(np.asarray(_top_p_filter(jnp.asarray(logits), 0.8)))
    np.testing.assert_array_equal(kept, [[1, 1, 1, 0, 0], [0, 1, 1, 1, 0]])


def test_sampling_frequencies_follow_the_filtered_distribution():
    probs = np.array([0.4, 0.3, 0.2, 0.1], np.float32)
    logits = jnp.asarray(np.log(np.tile(probs, (20000, 1))))
    keys = jax.random.split(jax.random.key(0), 20000)
    tokens = np.asarray(Sampling(temperature=1.0, top_k=3).next_token(logits, keys))
    frequencies = np.bincount(tokens, minlength=4) / len(tokens)
    np.testing.assert_allclose(frequencies, [0.4 / 0.9, 0.3 / 0.9, 0.2 / 0.9, 0.0], atol=0.015)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: Sampling(temperature=0.0), "^temperature=0.0 must be > 0"),
        (lambda: Sampling(top_p=1.5), "^top_p=1.5 must be in"),
        (lambda: Sampling(top_k=-1), "^top_k=-1 must be >= 0"),
        (lambda: BeamSearch(num_beams=0), "^num_beams=0: beam search needs num_beams >= 2"),
        (lambda: BeamSearch(early_stopping="sometimes"), "^early_stopping='sometimes'"),
    ],
)
def test_bad_settings_name_the_parameter(make, message):
    with pytest.raises(UserError, match=message):
        make()


def test_one_beam_is_refused_not_run_as_greedy():
    """BeamSearch(num_beams=1) is refused (a ValueError too) instead of silently decoding
    greedily; Greedy() is what it would have been."""
    with pytest.raises(ValueError, match=r"num_beams=1: .* use Greedy\(\)"):
        BeamSearch(num_beams=1)
