"""Generation: token-identical to HF `generate` (greedy for every family, beam search on
LLaMA, Mistral, BLOOM and Gemma 3) with ragged prompts, ragged priors and rows that end at
different steps; plus sampling, stop strings, log-probabilities and bad input."""

from __future__ import annotations

import dataclasses
import json
import shutil

import jax
import numpy as np
import pytest

from pretty_jax.checkpoints import loading
from pretty_jax.checkpoints.reference import HFReference
from pretty_jax.checkpoints.sample_text import SENTENCES
from pretty_jax.checkpoints.tiny import PRESETS
from pretty_jax.checkpoints.tokenizer import load_tokenizer
from pretty_jax.core.errors import UserError
from pretty_jax.engine.batching import bucket_length, left_pad, positions_from_mask
from pretty_jax.engine.generator import DecodeConfig, Generator
from pretty_jax.engine.strategies import BeamSearch, Greedy, Sampling, beam_settings
from pretty_jax.models import forward

PRIORS = ([], [10], [20, 30], [], [7], [3, 4, 5])


def _prompts(directory):
    tokenizer = load_tokenizer(directory)
    return [tokenizer(s).input_ids for s in SENTENCES[: len(PRIORS)]]


def _with_extra_eos(source, target, prompts):
    """A copy of a checkpoint whose EOS ids also include a token greedy decoding emits
    mid-way for some rows, so that rows end at different steps."""
    shutil.copytree(source, target)
    model = loading.load_model(target, "float32")
    greedy = Generator(model, batch_size=8).generate(prompts, list(PRIORS), DecodeConfig(max_new_tokens=12))
    extra = greedy[1].tokens[4]
    for name in ("config.json", "generation_config.json"):
        config = json.loads((target / name).read_text())
        config["eos_token_id"] = [config["eos_token_id"], extra]
        (target / name).write_text(json.dumps(config))
    return target


def _assert_identical_to_hf(directory, prompts, config: DecodeConfig):
    # HF generates max_new_tokens after its whole input, prompt + prior: so do we here.
    config = dataclasses.replace(config, count_prior=False)
    model = loading.load_model(directory, "float32")
    generator = Generator(model, load_tokenizer(directory), batch_size=4)
    ours = generator.generate(prompts, list(PRIORS), config)
    tokens, mask, _ = left_pad([p + list(q) for p, q in zip(prompts, PRIORS)], generator.pad_id)
    theirs = HFReference(directory).generate(
        tokens, mask, config.max_new_tokens, generator.pad_id, **beam_settings(config.strategy))
    for row, result in enumerate(ours):
        reference = [int(t) for t in theirs[row]]
        n = len(result.tokens)
        assert list(result.tokens) == reference[:n], f"row {row}"
        assert all(t == generator.pad_id for t in reference[n:]), f"row {row} ended early"
    return ours


# The developer loop (`-m "not slow"`) keeps the first family; the suite runs them all.
@pytest.mark.parametrize("preset", [pytest.param(p, marks=[pytest.mark.slow] if i else []) for i, p in enumerate(PRESETS)])
def test_greedy_is_token_identical_to_hf(tiny_checkpoint, tmp_path, preset):
    prompts = _prompts(tiny_checkpoint(preset))
    directory = _with_extra_eos(tiny_checkpoint(preset), tmp_path / preset, prompts)
    ours = _assert_identical_to_hf(directory, prompts, DecodeConfig(max_new_tokens=24))
    reasons = {g.finish_reason for g in ours}
    assert reasons == {"eos", "length"}, reasons


@pytest.mark.parametrize(
    "preset,search",
    [
        ("llama", BeamSearch(num_beams=4)),
        ("bloom", BeamSearch(num_beams=4)),
        ("mistral", BeamSearch(num_beams=4, length_penalty=0.6, early_stopping=True)),
        ("llama3", BeamSearch(num_beams=3, length_penalty=1.5, early_stopping="never")),
        ("gemma3", BeamSearch(num_beams=3)),
    ],
)
@pytest.mark.slow
def test_beam_search_is_token_identical_to_hf(tiny_checkpoint, tmp_path, preset, search):
    prompts = _prompts(tiny_checkpoint(preset))
    directory = _with_extra_eos(tiny_checkpoint(preset), tmp_path / preset, prompts)
    ours = _assert_identical_to_hf(directory, prompts, DecodeConfig(max_new_tokens=16, strategy=search))
    assert all(g.score is not None for g in ours)


@pytest.mark.slow
def test_prior_and_logprobs_match_a_teacher_forced_pass(jax_checkpoint):
    directory = jax_checkpoint("qwen2")
    prompts = _prompts(directory)
    model = loading.load_model(directory, "float32")
    generator = Generator(model, batch_size=8)
    config = DecodeConfig(max_new_tokens=6, return_logprobs=True)
    results = generator.generate(prompts, list(PRIORS), config)
    for prompt, prior, result in zip(prompts, PRIORS, results):
        assert result.prior == tuple(prior) and result.answer_tokens == tuple(prior) + result.tokens
        assert len(result.logprobs) == len(result.tokens)
        sequence = prompt + list(result.answer_tokens)
        tokens, mask, positions = left_pad([sequence], 0)
        logits, _ = forward(model.graphdef, model.params, tokens, positions, mask)
        logp = np.asarray(jax.nn.log_softmax(logits[0]))
        start = len(prompt) + len(prior)
        expected = [logp[start - 1 + i, t] for i, t in enumerate(result.tokens)]
        np.testing.assert_allclose(result.logprobs, expected, atol=1e-4)
        assert all(logp[start - 1 + i].argmax() == t for i, t in enumerate(result.tokens))


@pytest.mark.slow
def test_sampling_depends_on_seed_and_example_not_on_batching(jax_checkpoint):
    directory = jax_checkpoint("llama")
    prompts = _prompts(directory)
    model = loading.load_model(directory, "float32")
    config = DecodeConfig(max_new_tokens=12, strategy=Sampling(temperature=1.0), seed=3)
    by_eight = Generator(model, batch_size=8).generate(prompts, list(PRIORS), config)
    by_two = Generator(model, batch_size=2).generate(prompts, list(PRIORS), config)
    assert [g.tokens for g in by_eight] == [g.tokens for g in by_two]
    reordered = Generator(model, batch_size=2).generate(
        prompts[::-1], list(PRIORS)[::-1], config, example_ids=list(range(len(prompts)))[::-1]
    )
    assert [g.tokens for g in reordered][::-1] == [g.tokens for g in by_eight]
    other_seed = Generator(model, batch_size=8).generate(
        prompts, list(PRIORS), DecodeConfig(max_new_tokens=12, strategy=Sampling(1.0), seed=4)
    )
    assert [g.tokens for g in other_seed] != [g.tokens for g in by_eight]
    greedy = Generator(model, batch_size=8).generate(prompts, list(PRIORS), DecodeConfig(max_new_tokens=12))
    top1 = Generator(model, batch_size=8).generate(
        prompts, list(PRIORS), DecodeConfig(max_new_tokens=12, strategy=Sampling(0.7, top_k=1), seed=5)
    )
    nucleus = Generator(model, batch_size=8).generate(
        prompts, list(PRIORS), DecodeConfig(max_new_tokens=12, strategy=Sampling(1.0, top_p=1e-6), seed=5)
    )
    assert [g.tokens for g in top1] == [g.tokens for g in greedy] == [g.tokens for g in nucleus]


@pytest.mark.parametrize("strategy", [Greedy(), BeamSearch(num_beams=3)])
def test_stop_string_ends_rows_and_cuts_text(tiny_checkpoint, strategy):
    """The stop string is the text of a token the model produces mid-way."""
    directory = tiny_checkpoint("bloom")
    tokenizer = load_tokenizer(directory)
    prompts = _prompts(directory)
    generator = Generator(loading.load_model(directory, "float32"), tokenizer, batch_size=8)
    free = generator.generate(prompts, list(PRIORS), DecodeConfig(max_new_tokens=16, strategy=strategy))
    stop = tokenizer.decode([free[0].tokens[5]])
    assert stop.strip(), "need a visible stop string"
    stopped = generator.generate(
        prompts, list(PRIORS), DecodeConfig(max_new_tokens=16, strategy=strategy, stop_strings=(stop,))
    )
    for before, after in zip(free, stopped):
        assert stop not in after.text
        if after.finish_reason == "stop":
            full = tokenizer.decode(list(after.tokens), skip_special_tokens=True)
            assert full.endswith(stop) and after.text == full[: full.index(stop)]
        if isinstance(strategy, Greedy):
            full_text = tokenizer.decode(list(before.tokens), skip_special_tokens=True)
            # Greedy runs are the same up to the stop, which ends them.
            assert before.tokens[: len(after.tokens)] == after.tokens
            assert (after.finish_reason == "stop") == (stop in full_text)
    assert any(g.finish_reason == "stop" for g in stopped)
    if isinstance(strategy, Greedy):
        assert stopped[0].finish_reason == "stop" and len(stopped[0].tokens) <= 6


def test_bad_inputs_are_refused_by_example(jax_checkpoint):
    directory = jax_checkpoint("llama")
    generator = Generator(loading.load_model(directory, "float32"), batch_size=2)
    with pytest.raises(UserError, match="example 1: empty prompt"):
        generator.generate([[1, 5], []])
    with pytest.raises(UserError, match=r"example 0: prior token id 99999 is outside the vocabulary \[0, 448\)"):
        generator.generate([[1, 5]], [[99999]])
    with pytest.raises(UserError, match="must be a positive multiple"):
        Generator(generator.model, batch_size=0)


def test_long_inputs_are_truncated_from_the_left_or_refused(jax_checkpoint, caplog):
    directory = jax_checkpoint("llama")
    model = loading.load_model(directory, "float32")
    generator = Generator(model, batch_size=2)
    bos = model.config.special_tokens.bos_token_id
    long_prompt = [bos] + list(range(10, 60))
    config = DecodeConfig(max_new_tokens=8, max_len=40)
    results = generator.generate([long_prompt, [bos, 11, 12]], [[5, 6], []], config)
    # The prior's 2 tokens count within max_new_tokens: 51 + 8 tokens must fit 40.
    assert results[0].truncated_tokens == 51 + 8 - 40 and results[1].truncated_tokens == 0
    assert "truncated 1 of 2 inputs from the left to fit max_len=40 (19 tokens dropped)" in caplog.text
    kept = [bos] + long_prompt[1 + 19 :] + [5, 6]
    assert results[0].tokens == generator.generate([kept], config=DecodeConfig(max_new_tokens=6))[0].tokens
    after_prior = dataclasses.replace(config, count_prior=False)
    assert generator.generate([long_prompt], [[5, 6]], after_prior)[0].truncated_tokens == 51 + 2 + 8 - 40
    with pytest.raises(UserError, match="example 0: prompt \\(51\\) \\+ prior \\(2\\) \\+ new tokens \\(6\\) exceed max_len=40"):
        generator.generate([long_prompt], [[5, 6]], DecodeConfig(max_new_tokens=8, max_len=40, overflow="error"))


def test_prompt_lengths_are_bucketed():
    assert [bucket_length(n) for n in (1, 16, 17, 100, 512, 513, 700)] == [16, 16, 32, 128, 512, 768, 768]


def test_positions_from_the_mask_agree_on_host_and_device():
    mask = np.array([[0, 0, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 1]], np.int32)
    expected = [[0, 0, 0, 1, 2, 2], [0, 1, 2, 3, 4, 5], [0, 0, 0, 0, 0, 0]]
    host = positions_from_mask(mask)
    assert isinstance(host, np.ndarray) and host.dtype == np.int32
    np.testing.assert_array_equal(host, expected)
    np.testing.assert_array_equal(np.asarray(jax.jit(positions_from_mask)(jax.numpy.asarray(mask))), expected)


def test_an_unknown_strategy_is_refused(tiny_checkpoint):
    generator = Generator(loading.load_model(tiny_checkpoint("llama"), "float32"), batch_size=1)
    with pytest.raises(UserError, match="strategy=.*use Greedy"):
        generator.generate([[1, 5]], config=DecodeConfig(max_new_tokens=2, strategy="beam"))
