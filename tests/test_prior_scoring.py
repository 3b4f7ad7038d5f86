"""Priors the models judge before decoding (experiments/prior_scoring.py), end to end on
tiny models and real Flores + MUSE data: the foundation's choice is the argmax of the
candidates' mean log-probs (recomputed in NumPy from full logits), the gate drops
exactly the priors below the threshold (those examples decode as with no prior), the
adaptive SFT prior stops at the first step whose KL is below the threshold, the report
and results say so, and the new stages resume after a kill."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

import pretty_jax
from pretty_jax import experiments
from pretty_jax.checkpoints import loading
from pretty_jax.checkpoints.tokenizer import continuation_ids
from pretty_jax.core.errors import UserError
from pretty_jax.engine.batching import left_pad
from pretty_jax.engine.generator import DecodeConfig
from pretty_jax.experiments.priors import PriorSpec, experiment_systems
from pretty_jax.models import forward
from pretty_jax.tasks import format_prompt
from pretty_jax.tasks.dictionary import dictionary_prior_options, read_muse
from pretty_jax.tasks.flores import FloresTask
from pretty_jax.tasks.registry import get_task

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.exists(), reason="../shared/data (real sample data) is absent")
LIMIT = 8


@pytest.fixture(scope="module")
def pair(jax_checkpoint, jax_sft_stand_in):
    return jax_checkpoint("llama"), jax_sft_stand_in("llama")


@pytest.fixture(scope="module")
def foundation_model(pair):
    return loading.load_model(pair[0], "float32"), loading.load_tokenizer_of(pair[0])


def _settings(out: Path, foundation: Path, sft: Path, **changes) -> experiments.Settings:
    settings = experiments.Settings(
        task="translation", data=str(DATA / "flores101_devtest"), split="devtest", source_lang="eng",
        target_langs=("fra",), limit=LIMIT, template=get_task("translation").default_template, num_shots=0,
        priors=(PriorSpec("none"), PriorSpec("dictionary", 1, "words")), sweep=(),
        # A budget that holds every prior whole (the tiny tokenizer splits a French word
        # into up to ~10 tokens; a prior longer than --max_new_tokens is cut to it).
        decode=DecodeConfig(max_new_tokens=16, stop_strings=("\n",)), batch_size=4, output_dir=out,
        foundation=str(foundation), sft=str(sft), dtype="float32",
        dictionary=str(DATA / "muse" / "{source_iso}-{target_iso}.txt"),
    )
    settings = dataclasses.replace(settings, **changes)
    settings.validate()
    return settings


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _mean_logprob(model, prompt_ids, prior_ids) -> float:
    """NumPy: the mean log-prob of prior_ids after prompt_ids from one forward, left-padded
    to a multiple of 64 tokens (a few compiled programs for every length)."""
    sequence = list(prompt_ids) + list(prior_ids)
    width = -(-len(sequence) // 64) * 64
    tokens, mask, positions = left_pad([sequence], 0, width)
    logits = np.asarray(forward(model.graphdef, model.params, tokens, positions, mask)[0], np.float64)[0]
    logp = logits - logits.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    first = width - len(sequence) + len(prompt_ids) - 1  # the column predicting prior_ids[0]
    return float(np.mean([logp[first + j, t] for j, t in enumerate(prior_ids)]))


def _prompts():
    task = FloresTask(DATA / "flores101_devtest", "devtest", "eng", "fra", LIMIT)
    examples = task.examples()
    return examples, [format_prompt(get_task("translation").default_template, e, task.prompt_fields()) for e in examples]


@pytest.mark.slow
@needs_data
def test_choice_is_the_candidate_the_foundation_finds_most_probable(pair, foundation_model, tmp_path):
    model, tokenizer = foundation_model
    out = tmp_path / "out"
    results = pretty_jax.run_experiment(_settings(out, *pair, prior_choice=("first", "foundation")))
    dictionary = read_muse(DATA / "muse" / "en-fr.txt")
    examples, prompts = _prompts()
    scores = _records(out / "eng-fra" / "dictionary-1word-chosen.scores.jsonl")
    outputs = _records(out / "eng-fra" / "dictionary-1word-chosen.jsonl")
    first = _records(out / "eng-fra" / "dictionary-1word.jsonl")
    differs = 0
    for example, prompt, score, output, plain in zip(examples, prompts, scores, outputs, first):
        (translations,) = dictionary_prior_options(example.source, dictionary, 1)
        assert [c["text"] for c in score["candidates"][0]] == list(translations)
        prompt_ids = tokenizer(prompt).input_ids
        expected = [_mean_logprob(model, prompt_ids, continuation_ids(tokenizer, prompt, t)) for t in translations]
        np.testing.assert_allclose([c["mean_logprob"] for c in score["candidates"][0]], expected, atol=1e-4)
        best = translations[int(np.argmax(expected))]
        assert score["prior_text"] == output["prior_text"] == best
        assert output["prior_tokens"] == continuation_ids(tokenizer, prompt, best)
        assert plain["prior_text"] == translations[0]
        differs += best != translations[0]
    assert differs, "the foundation chose the first-listed translation everywhere: the test shows nothing"
    systems = results["pairs"]["eng-fra"]["systems"]
    assert list(systems)[:3] == ["none", "dictionary-1word", "dictionary-1word-chosen"]
    assert systems["dictionary-1word-chosen"]["prior"]["choice"] == "foundation"
    assert "| foundation + dictionary prior (1 word, foundation's choice) |" in (out / "report.md").read_text()


@pytest.mark.slow
@needs_data
def test_gate_drops_exactly_the_priors_below_the_threshold(pair, foundation_model, tmp_path):
    model, tokenizer = foundation_model
    out = tmp_path / "out"
    pretty_jax.run_experiment(_settings(out, *pair))
    examples, prompts = _prompts()
    plain = _records(out / "eng-fra" / "dictionary-1word.jsonl")
    means = [_mean_logprob(model, tokenizer(p).input_ids, r["prior_tokens"]) for p, r in zip(prompts, plain)]
    threshold = float(np.median(means))
    # The same run extended with the gate: the plain stages are reused, the gated ones added.
    before = (out / "eng-fra" / "none.jsonl").read_bytes()
    results = pretty_jax.run_experiment(_settings(out, *pair, prior_min_logprob=threshold))
    assert (out / "eng-fra" / "none.jsonl").read_bytes() == before
    key = f"dictionary-1word-gated{threshold:g}"
    gated = _records(out / "eng-fra" / f"{key}.jsonl")
    scores = _records(out / "eng-fra" / f"{key}.scores.jsonl")
    none = _records(out / "eng-fra" / "none.jsonl")
    dropped = [m < threshold for m in means]
    assert 0 < sum(dropped) < LIMIT
    for mean, drop, score, output, plain_output, none_output in zip(means, dropped, scores, gated, plain, none):
        assert score["mean_logprob"] == pytest.approx(mean, abs=1e-4)
        assert score["dropped"] == drop and output.get("prior_dropped", False) == drop
        expected = none_output if drop else plain_output
        assert output["prior_tokens"] == expected.get("prior_tokens", [])
        assert output["tokens"] == expected["tokens"] and output["text"] == expected["text"]
    system = results["pairs"]["eng-fra"]["systems"][key]
    assert system["prior_dropped"] == sum(dropped)
    assert system["prior"]["min_logprob"] == threshold
    assert f"the gate dropped {sum(dropped)} of {LIMIT} priors" in (out / "report.md").read_text()


@pytest.mark.slow
@needs_data
def test_adaptive_sft_prior_stops_at_the_first_step_below_the_threshold(pair, tmp_path):
    out = tmp_path / "out"
    run = dict(priors=(PriorSpec("none"), PriorSpec("sft", 1)), sweep=(0, 1, 2), adaptive_max_prior_tokens=3)
    pretty_jax.run_experiment(_settings(out, *pair, adaptive_kl=1e-9, **run))  # every KL is above: k = 3
    probe = _records(out / "eng-fra" / "sft-kl1e-09-max3tok.scores.jsonl")
    threshold = float(np.median([kl for r in probe for kl in r["kl_after_tokens"]]))
    results = pretty_jax.run_experiment(_settings(out, *pair, adaptive_kl=threshold, **run))
    key = f"sft-kl{threshold:g}-max3tok"
    sft = _records(out / "eng-fra" / "sft.jsonl")
    counts = []
    for score, output, sft_output, probed in zip(_records(out / "eng-fra" / f"{key}.scores.jsonl"),
                                                 _records(out / "eng-fra" / f"{key}.jsonl"), sft, probe):
        kl = np.array(score["kl_after_tokens"])
        np.testing.assert_allclose(kl, probed["kl_after_tokens"], rtol=1e-6)
        below = np.flatnonzero(kl < threshold)
        k = int(below[0]) if below.size else min(3, len(sft_output["tokens"]))
        assert output["prior_tokens"] == sft_output["tokens"][:k]
        counts.append(k)
    assert len(set(counts)) > 1, counts
    system = results["pairs"]["eng-fra"]["systems"][key]
    assert system["mean_prior_tokens"] == pytest.approx(np.mean(counts))
    assert system["prior_token_counts"] == {str(k): counts.count(k) for k in sorted(set(counts))}
    report = (out / "report.md").read_text()
    assert f"mean k = {np.mean(counts):.2f}" in report and f"| mean {np.mean(counts):.2f} (adaptive" in report


@pytest.mark.slow
@needs_data
def test_scored_stages_resume_after_a_kill_to_the_uninterrupted_files(pair, tmp_path):
    changes = dict(prior_choice=("foundation",), prior_min_logprob=-5.0)
    pretty_jax.run_experiment(_settings(tmp_path / "whole", *pair, **changes))
    killed = tmp_path / "killed"
    pretty_jax.run_experiment(_settings(killed, *pair, **changes))
    names = ["dictionary-1word-chosen.scores.jsonl", "dictionary-1word-chosen-gated-5.scores.jsonl",
             "dictionary-1word-chosen-gated-5.jsonl"]
    for name in names:  # as a kill would leave them: one whole batch and a torn line
        path = killed / "eng-fra" / name
        lines = path.read_bytes().split(b"\n")
        path.write_bytes(b"\n".join(lines[:4]) + b"\n" + lines[4][:10])
    (killed / "eng-fra" / "dictionary-1word-chosen.jsonl").unlink()
    pretty_jax.run_experiment(_settings(killed, *pair, **changes))
    for name in names + ["dictionary-1word-chosen.jsonl"]:
        assert (killed / "eng-fra" / name).read_bytes() == (tmp_path / "whole" / "eng-fra" / name).read_bytes(), name
    # The threshold is part of the stage's recorded inputs: the scored stages are its own.
    record = json.loads((killed / "run_config.json").read_text())["stages"]
    assert record["eng-fra/dictionary-1word-chosen-gated-5.scores.jsonl"]["prior"]["min_logprob"] == -5.0


def test_scored_systems_sit_next_to_the_plain_ones_and_bad_combinations_are_refused():
    plain = (PriorSpec("none"), PriorSpec("sft", 1), PriorSpec("dictionary", 1, "words"))
    keys = [s.key for s in experiment_systems(plain, ("first", "foundation"), -3.0, 0.5, 2)]
    assert keys == ["none", "sft-1tok", "sft-1tok-gated-3", "dictionary-1word", "dictionary-1word-chosen",
                    "dictionary-1word-gated-3", "dictionary-1word-chosen-gated-3", "sft-kl0.5-max2tok"]
    assert PriorSpec("sft", 1).as_json() == {"kind": "sft", "count": 1, "unit": "tokens"}
    with pytest.raises(UserError, match="dictionary's translations"):
        PriorSpec("oracle", 1, choice="foundation")
    with pytest.raises(UserError, match="token-level SFT priors"):
        PriorSpec("sft", 2, "words", adaptive_kl=0.5)
    with pytest.raises(UserError, match="KL threshold > 0"):
        PriorSpec("sft", 2, adaptive_kl=0.0)
    base = dict(task="translation", data="d", split="devtest", source_lang="eng", target_langs=("fra",), limit=None,
                template="{source}", num_shots=0, sweep=(), decode=DecodeConfig(), batch_size=1, output_dir="o",
                foundation="f", sft="s")
    with pytest.raises(UserError, match="needs the dictionary prior"):
        experiments.Settings(priors=(PriorSpec("none"),), prior_choice=("foundation",), **base).validate()
    with pytest.raises(UserError, match="needs sft in priors"):
        experiments.Settings(priors=(PriorSpec("none"),), adaptive_kl=0.5, **base).validate()
