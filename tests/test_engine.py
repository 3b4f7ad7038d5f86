"""The engine's logits hook: a system of several streams decodes with the logits its
rule combines, on device, in the pool and in beam search."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import numpy as np
import pytest

from pretty_jax.checkpoints import loading
from pretty_jax.checkpoints.tokenizer import load_tokenizer
from pretty_jax.engine.generator import DecodeConfig, Generator, System
from pretty_jax.engine.strategies import BeamSearch, Greedy
from teacher_forcing import teacher_forced_greedy


@dataclasses.dataclass(frozen=True)
class Mean:
    """A test rule: the mean of two streams' log-probabilities."""

    streams: ClassVar[int] = 2

    def combine(self, logits, steps_B):
        del steps_B
        return 0.5 * (jax.nn.log_softmax(logits[0]) + jax.nn.log_softmax(logits[1]))


@dataclasses.dataclass(frozen=True)
class Second:
    """A test rule that reads two streams and decodes with the second one alone."""

    streams: ClassVar[int] = 2

    def combine(self, logits, steps_B):
        return logits[1]


@pytest.fixture(scope="module")
def pair(jax_checkpoint, jax_sft_stand_in):
    foundation = loading.load_model(jax_checkpoint("llama"), "float32")
    other = loading.load_model(jax_sft_stand_in("llama"), "float32")
    tokenizer = load_tokenizer(jax_checkpoint("llama"))
    prompts = [tokenizer(text).input_ids for text in ("The cat", "A long sentence about the weather", "Hello")]
    return foundation, other, tokenizer, prompts


def _mean_of_log_softmax(logits, step):
    return sum(0.5 * (x - np.logaddexp.reduce(x, axis=-1, keepdims=True)) for x in logits)


@pytest.mark.parametrize("continuous", [True, False], ids=["continuous", "static"])
def test_two_models_decode_by_the_rule_s_combined_logits(pair, continuous):
    foundation, other, tokenizer, prompts = pair
    system = System(Mean(), (foundation, other))
    generator = Generator(foundation, tokenizer, batch_size=2, continuous=continuous, system=system)
    # Each example has its own prompt per stream; the prior follows both and counts
    # within max_new_tokens (DecodeConfig.count_prior).
    stream_prompts = [(p, prompts[(i + 1) % len(prompts)]) for i, p in enumerate(prompts)]
    priors = [[], [5], [7, 9]]
    results = generator.generate(stream_prompts, priors, DecodeConfig(max_new_tokens=6, strategy=Greedy()))
    eos = set(foundation.config.special_tokens.eos_token_ids)
    for (streams, prior), result in zip(zip(stream_prompts, priors), results):
        expected = teacher_forced_greedy((foundation, other), streams, prior, 6 - len(prior), _mean_of_log_softmax,
                                         frozenset(eos))
        assert list(result.tokens) == expected


@pytest.mark.slow
@pytest.mark.parametrize("strategy", [Greedy(), BeamSearch(num_beams=3)], ids=["greedy", "beam"])
def test_a_stream_the_rule_ignores_changes_nothing(pair, strategy):
    foundation, other, tokenizer, prompts = pair
    config = DecodeConfig(max_new_tokens=8, strategy=strategy, return_logprobs=not isinstance(strategy, BeamSearch))
    plain = Generator(foundation, tokenizer, batch_size=2).generate(prompts, None, config)
    steered = Generator(foundation, tokenizer, batch_size=2, system=System(Second(), (other, foundation)))
    # The ignored stream runs another model over another prompt.
    results = steered.generate([(prompts[-1], p) for p in prompts], None, config)
    for a, b in zip(results, plain):
        assert (a.tokens, a.text, a.finish_reason) == (b.tokens, b.text, b.finish_reason)
        if b.logprobs is not None:
            np.testing.assert_allclose(a.logprobs, b.logprobs, rtol=1e-5, atol=1e-5)


def test_a_system_is_refused_when_its_models_do_not_fit_its_rule(pair):
    foundation, other, tokenizer, prompts = pair
    with pytest.raises(Exception, match="reads 2 models"):
        System(Mean(), (foundation,))
    generator = Generator(foundation, tokenizer, system=System(Mean(), (foundation, other)))
    with pytest.raises(Exception, match="example 0: 1 prompts for a system of 2 streams"):
        generator.generate([(prompts[0],)], None, DecodeConfig(max_new_tokens=2))
