"""The logits rules of contrastive decoding and proxy tuning: each rule against a NumPy
reference of its scoring, on fixed logits and as the engine decodes (teacher-forced
full forwards), and the settings that must reproduce the plain model token for token."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from pretty_jax.checkpoints import loading
from pretty_jax.checkpoints.tokenizer import load_tokenizer
from pretty_jax.engine.generator import DecodeConfig, Generator, System
from pretty_jax.engine.logits import Contrastive, ProxyTuning
from pretty_jax.engine.strategies import BeamSearch, Greedy
from teacher_forcing import teacher_forced_greedy


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return x - np.logaddexp.reduce(x, axis=-1, keepdims=True)


def _numpy_contrastive(logits, lambdas):
    score = _log_softmax(logits[0])
    for weight, other in zip(lambdas, logits[1:]):
        score = score - weight * _log_softmax(other)
    return score


def _numpy_proxy(logits, steps, first_k):
    foundation, tuned, base = (x.astype(np.float64) for x in logits)
    steered = foundation + tuned - base
    if first_k is None:
        return steered
    return np.where((np.asarray(steps) < first_k)[:, None], steered, foundation)


@pytest.fixture(scope="module")
def fixed_logits():
    rng = np.random.default_rng(0)
    return tuple((3 * rng.standard_normal((4, 50))).astype(np.float32) for _ in range(3))


@pytest.mark.parametrize("lambdas", [(0.5,), (0.1, 0.7), (0.0,)])
def test_contrastive_scores_log_p_minus_lambda_log_p_on_fixed_logits(fixed_logits, lambdas):
    logits = fixed_logits[: 1 + len(lambdas)]
    got = np.asarray(jax.jit(Contrastive(lambdas).combine)(logits, np.zeros(4, np.int32)))
    np.testing.assert_allclose(got, _numpy_contrastive(logits, lambdas), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("first_k", [None, 0, 2])
def test_proxy_tuning_adds_the_tuned_minus_base_difference_for_the_first_k_tokens(fixed_logits, first_k):
    steps = np.array([0, 1, 2, 5], np.int32)
    got = np.asarray(jax.jit(ProxyTuning(first_k).combine)(fixed_logits, steps))
    np.testing.assert_allclose(got, _numpy_proxy(fixed_logits, steps, first_k), rtol=1e-5, atol=1e-4)


def test_rules_refuse_weights_they_cannot_use():
    with pytest.raises(ValueError, match="weight >= 0"):
        Contrastive((-0.1,))
    with pytest.raises(ValueError, match="weight >= 0"):
        Contrastive(())
    with pytest.raises(ValueError, match="first_k=-1"):
        ProxyTuning(-1)


# -- decoding with the rules ------------------------------------------------------------


@pytest.fixture(scope="module")
def models(jax_checkpoint, jax_sft_stand_in):
    foundation = loading.load_model(jax_checkpoint("llama"), "float32")
    tuned = loading.load_model(jax_sft_stand_in("llama"), "float32")
    rng = np.random.default_rng(2)
    base = dataclasses.replace(  # a third model: the tuned one perturbed again
        tuned, params=jax.tree.map(lambda x: x + 0.05 * rng.standard_normal(x.shape).astype(np.float32), tuned.params))
    tokenizer = load_tokenizer(jax_checkpoint("llama"))
    prompts = [tokenizer(text).input_ids for text in ("The cat", "A long sentence about the weather", "Hello")]
    return foundation, tuned, base, tokenizer, prompts


PRIORS = [[], [5], [7, 9]]


@pytest.mark.slow
@pytest.mark.parametrize("continuous", [True, False], ids=["continuous", "static"])
def test_contrastive_decoding_follows_its_rule_teacher_forced(models, continuous):
    foundation, _, _, tokenizer, prompts = models
    lambdas = (0.6, 0.3)
    system = System(Contrastive(lambdas), (foundation,) * 3)
    generator = Generator(foundation, tokenizer, batch_size=2, continuous=continuous, system=system)
    stream_prompts = [(p, prompts[(i + 1) % 3], prompts[(i + 2) % 3]) for i, p in enumerate(prompts)]
    results = generator.generate(stream_prompts, PRIORS, DecodeConfig(max_new_tokens=8, count_prior=False))
    eos = set(foundation.config.special_tokens.eos_token_ids)
    for streams, prior, result in zip(stream_prompts, PRIORS, results):
        expected = teacher_forced_greedy((foundation,) * 3, streams, prior, 8,
                                 lambda logits, steps: _numpy_contrastive(logits, lambdas), eos)
        assert list(result.tokens) == expected


@pytest.mark.parametrize("first_k", [None, 2], ids=["full", "first-2"])
@pytest.mark.parametrize("continuous", [True, False], ids=["continuous", "static"])
def test_proxy_tuning_follows_its_rule_teacher_forced(models, first_k, continuous):
    foundation, tuned, base, tokenizer, prompts = models
    system = System(ProxyTuning(first_k), (foundation, tuned, base))
    generator = Generator(foundation, tokenizer, batch_size=2, continuous=continuous, system=system)
    results = generator.generate([(p,) * 3 for p in prompts], PRIORS, DecodeConfig(max_new_tokens=8, count_prior=False))
    eos = set(foundation.config.special_tokens.eos_token_ids)
    for prompt, prior, result in zip(prompts, PRIORS, results):
        # k counts generated tokens after the prior: the step index of the reference.
        expected = teacher_forced_greedy((foundation, tuned, base), (prompt,) * 3, prior, 8,
                                 lambda logits, steps: _numpy_proxy(logits, steps, first_k), eos)
        assert list(result.tokens) == expected


def test_first_k_steers_only_the_first_tokens(models):
    """Proxy first-2 agrees with full proxy tuning on the first two tokens and with the
    foundation fed the same two tokens afterwards (where they differ at all)."""
    foundation, tuned, base, tokenizer, prompts = models
    config = DecodeConfig(max_new_tokens=8, count_prior=False)
    full = Generator(foundation, tokenizer, batch_size=2, system=System(ProxyTuning(), (foundation, tuned, base)))
    first_2 = Generator(foundation, tokenizer, batch_size=2, system=System(ProxyTuning(2), (foundation, tuned, base)))
    plain = Generator(foundation, tokenizer, batch_size=2)
    steered = full.generate([(p,) * 3 for p in prompts], None, config)
    mixed = first_2.generate([(p,) * 3 for p in prompts], None, config)
    continued = plain.generate(prompts, [r.tokens[:2] for r in steered],
                               dataclasses.replace(config, max_new_tokens=6))
    assert [r.tokens[:2] for r in mixed] == [r.tokens[:2] for r in steered]
    assert [list(r.tokens) for r in mixed] == [list(r.prior) + list(r.tokens) for r in continued]
    assert [r.tokens for r in mixed] != [r.tokens for r in steered]  # the foundation took over


SETTINGS = [Greedy(), BeamSearch(num_beams=3)]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", SETTINGS, ids=["greedy", "beam"])
def test_neutral_settings_reproduce_the_plain_model_token_for_token(models, strategy):
    foundation, tuned, base, tokenizer, prompts = models
    config = DecodeConfig(max_new_tokens=8, strategy=strategy)
    plain = Generator(foundation, tokenizer, batch_size=2).generate(prompts, PRIORS, config)
    systems = {
        "lambda=0": (System(Contrastive((0.0,)), (foundation, foundation)), [(p, prompts[-1]) for p in prompts]),
        "tuned==base": (System(ProxyTuning(), (foundation, tuned, tuned)), [(p,) * 3 for p in prompts]),
        "first_k=0": (System(ProxyTuning(0), (foundation, tuned, base)), [(p,) * 3 for p in prompts]),
    }
    for name, (system, stream_prompts) in systems.items():
        results = Generator(foundation, tokenizer, batch_size=2, system=system).generate(stream_prompts, PRIORS, config)
        assert [(r.tokens, r.text, r.finish_reason) for r in results] == \
            [(r.tokens, r.text, r.finish_reason) for r in plain], name


def test_a_non_neutral_setting_changes_the_output(models):
    """The identity tests above can fail: a real contrast moves the tokens."""
    foundation, tuned, base, tokenizer, prompts = models
    config = DecodeConfig(max_new_tokens=8)
    plain = Generator(foundation, tokenizer, batch_size=2).generate(prompts, None, config)
    proxy = Generator(foundation, tokenizer, batch_size=2, system=System(ProxyTuning(), (foundation, tuned, base)))
    assert [r.tokens for r in proxy.generate([(p,) * 3 for p in prompts], None, config)] != [r.tokens for r in plain]
