"""Equal budgets: prior tokens count within `max_new_tokens`. In every decode loop an
example with a k-token prior generates at most N - k tokens, exactly what decoding its
prompt + prior with N - k new tokens gives; with the SFT model as its own foundation,
the SFT-prior systems equal the SFT model; a run recorded under the old rule is not
resumed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

import pretty_jax
from pretty_jax import experiments
from pretty_jax.checkpoints import loading
from pretty_jax.checkpoints.sample_text import SENTENCES
from pretty_jax.checkpoints.tokenizer import load_tokenizer
from pretty_jax.core.errors import UserError
from pretty_jax.engine.engine import Engine
from pretty_jax.engine.streams import prefill_rows
from pretty_jax.engine.generator import DecodeConfig, Generator
from pretty_jax.engine.strategies import BeamSearch, Sampling
from pretty_jax.experiments.priors import PriorSpec
from pretty_jax.tasks.registry import get_task

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.exists(), reason="../shared/data (real sample data) is absent")

N = 8
# No prior, 1, 3 and 2 tokens, a prior that fills the budget and one longer than it.
PRIORS = ([], [10], [20, 30, 40], [], [7, 8], [7] * N, [3] * (N + 2))

LOOPS = {
    "continuous greedy": (dict(batch_size=2), DecodeConfig(max_new_tokens=N, return_logprobs=True)),
    "continuous sampling": (dict(batch_size=2), DecodeConfig(max_new_tokens=N, strategy=Sampling(1.0), seed=3)),
    "static greedy": (dict(batch_size=4, continuous=False), DecodeConfig(max_new_tokens=N, return_logprobs=True)),
    "beam search": (dict(batch_size=4), DecodeConfig(max_new_tokens=N, strategy=BeamSearch(num_beams=3))),
    "beam search, never": (dict(batch_size=4), DecodeConfig(
        max_new_tokens=N, strategy=BeamSearch(num_beams=3, length_penalty=1.5, early_stopping="never"))),
}


@pytest.fixture(scope="module")
def llama(jax_checkpoint):
    directory = jax_checkpoint("llama")
    tokenizer = load_tokenizer(directory)
    prompts = [tokenizer(s).input_ids for s in SENTENCES[: len(PRIORS)]]
    return loading.load_model(directory, "float32"), tokenizer, prompts


def _assert_same(ours, expected, example: int) -> None:
    """Same tokens, finish reason and text; log-probabilities and beam scores to float
    precision (a batch's cache length may differ)."""
    assert (ours.tokens, ours.finish_reason, ours.text) == (expected.tokens, expected.finish_reason, expected.text), (
        f"example {example}")
    if expected.logprobs is not None:
        np.testing.assert_allclose(ours.logprobs, expected.logprobs, rtol=1e-5, atol=1e-5)
    if expected.score is not None:
        assert ours.score == pytest.approx(expected.score, rel=1e-5), f"example {example}"


@pytest.mark.slow
@pytest.mark.parametrize("loop", LOOPS)
def test_a_k_token_prior_leaves_n_minus_k_new_tokens_in_every_loop(llama, loop):
    model, tokenizer, prompts = llama
    generator_args, config = LOOPS[loop]
    generator = Generator(model, tokenizer, **generator_args)
    ours = generator.generate(prompts, list(PRIORS), config)
    budgets = [N - min(len(prior), N) for prior in PRIORS]
    for i, (budget, result) in enumerate(zip(budgets, ours)):
        assert len(result.tokens) <= budget, f"example {i}"
    # Each example is what its prompt + prior gives alone with its budget of new tokens.
    for budget in sorted(set(budgets) - {0}):
        rows = [i for i, b in enumerate(budgets) if b == budget]
        alone = generator.generate([prompts[i] + PRIORS[i] for i in rows], None,
                                   dataclasses.replace(config, max_new_tokens=budget), example_ids=rows)
        for i, expected in zip(rows, alone):
            _assert_same(ours[i], expected, i)
    ran_out = [i for i, b in enumerate(budgets) if 0 < b < N and len(ours[i].tokens) == b]
    assert ran_out, "no example with a prior reached its budget: the test would not see the limit"
    for i in (5, 6):  # the prior fills the budget (example 6's is cut to it): nothing is generated
        assert (ours[i].tokens, ours[i].finish_reason, ours[i].text) == ((), "length", "")
        assert ours[i].logprobs == (() if config.return_logprobs else None)
    [cut] = generator.generate([prompts[6]], [PRIORS[6]], config)
    assert (cut.prior, cut.tokens, cut.answer_tokens) == (tuple(PRIORS[6][:N]), (), tuple(PRIORS[6][:N]))


@pytest.mark.parametrize("loop", ["continuous greedy", "static greedy", "beam search"])
def test_examples_without_a_prior_and_the_old_rule_are_unchanged(llama, loop):
    """Without a prior the rule changes nothing; `count_prior=False` decodes N after
    any prior (as HF `generate` on prompt + prior)."""
    model, tokenizer, prompts = llama
    generator_args, config = LOOPS[loop]
    generator = Generator(model, tokenizer, **generator_args)
    counted = generator.generate(prompts, list(PRIORS), config)
    after_prior = generator.generate(prompts, list(PRIORS), dataclasses.replace(config, count_prior=False))
    for i, prior in enumerate(PRIORS):
        if not prior:
            _assert_same(counted[i], after_prior[i], i)
    plain = generator.generate([p + q for p, q in zip(prompts, PRIORS)], None, config)
    assert [g.tokens for g in after_prior] == [g.tokens for g in plain]
    assert max(len(g.tokens) for g in after_prior) == N


def test_the_budget_is_data_not_a_new_program(llama):
    """Ragged budgets compile nothing that uniform ones (the same inputs, no priors) did
    not, in static batches and in the pool."""
    model, tokenizer, prompts = llama
    priors = [[5] * (i % 3) for i in range(4)]
    inputs = [p + q for p, q in zip(prompts, priors)]
    programs = (prefill_rows, Engine.admit, Engine.run_chunk)
    for continuous in (False, True):
        generator = Generator(model, tokenizer, batch_size=4, continuous=continuous)
        uniform = generator.generate(inputs, None, DecodeConfig(max_new_tokens=N))
        before = [program._cache_size() for program in programs]
        ragged = generator.generate(prompts[:4], priors, DecodeConfig(max_new_tokens=N))
        assert [program._cache_size() for program in programs] == before
        assert [len(g.tokens) for g in ragged] != [len(g.tokens) for g in uniform]


def _experiment(out: Path, model: Path, **changes) -> dict:
    settings = experiments.Settings(
        task="translation", data=str(DATA / "flores101_devtest"), split="devtest", source_lang="eng",
        target_langs=("deu",), limit=6, template=get_task("translation").default_template, num_shots=0,
        priors=(PriorSpec("none"), PriorSpec("sft", 1)), sweep=(0, 1, 2),
        decode=DecodeConfig(max_new_tokens=N, stop_strings=("\n",)), batch_size=4, output_dir=out,
        foundation=str(model), sft=str(model), dtype="float32",
    )
    return pretty_jax.run_experiment(dataclasses.replace(settings, **changes))


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
@needs_data
def test_the_sft_model_as_its_own_foundation_equals_itself_with_sft_priors(jax_checkpoint, tmp_path):
    model = jax_checkpoint("llama")
    long_oracle = PriorSpec("oracle", N + 3)  # longer than the budget: cut to it
    results = _experiment(tmp_path / "out", model, priors=(PriorSpec("none"), PriorSpec("sft", 1), long_oracle))
    systems = results["pairs"]["eng-deu"]["systems"]
    sft = _records(tmp_path / "out" / "eng-deu" / "sft.jsonl")
    assert sum(r["finish_reason"] == "length" for r in sft) >= 3, "the SFT outputs must use their whole budget"
    for key, k in (("sft-1tok", 1), ("sft-2tok", 2)):
        assert systems[key]["metrics"] == systems["sft"]["metrics"], key
        for record, sft_record in zip(_records(tmp_path / "out" / "eng-deu" / f"{key}.jsonl"), sft):
            assert record["prior_tokens"] + record["tokens"] == sft_record["tokens"], key
            assert (record["text"], record["finish_reason"]) == (sft_record["text"], sft_record["finish_reason"]), key
    tokenizer = load_tokenizer(model)
    references = (DATA / "flores101_devtest" / "deu.devtest").read_text(encoding="utf-8").splitlines()
    for record, reference in zip(_records(tmp_path / "out" / "eng-deu" / f"{long_oracle.key}.jsonl"), references):
        assert record["prior_cut"] is True and len(record["prior_tokens"]) == N and record["tokens"] == []
        assert record["text"] == record["prior_text"] == tokenizer.decode(record["prior_tokens"])
        assert record["finish_reason"] == "length" and reference.startswith(record["text"].strip())


@needs_data
def test_a_run_recorded_under_the_old_budget_rule_is_refused(jax_checkpoint, tmp_path):
    model, out = jax_checkpoint("llama"), tmp_path / "out"
    _experiment(out, model, limit=2, sweep=())
    run_config = json.loads((out / "run_config.json").read_text())
    assert run_config["settings"]["max_new_tokens_counts_prior"] is True
    del run_config["settings"]["max_new_tokens_counts_prior"]  # as a run before the rule recorded it
    (out / "run_config.json").write_text(json.dumps(run_config))
    stage = (out / "eng-deu" / "sft-1tok.jsonl").read_bytes()
    with pytest.raises(UserError, match=r"holds a run that these settings would change:\n"
                                        r"  --max_new_tokens_counts_prior: was None, now True\n"):
        _experiment(out, model, limit=2, sweep=())
    assert (out / "eng-deu" / "sft-1tok.jsonl").read_bytes() == stage
