"""Contrastive decoding and proxy tuning as experiment systems: their stages, scores
and results rows, neutral settings equal to the plain foundation's outputs, the
vocabulary check before any model loads, and resume after kill -9."""

from __future__ import annotations

import dataclasses
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import in_process
import pytest
import sacrebleu

import pretty_jax
from pretty_jax import experiments
from pretty_jax.core.errors import UserError
from pretty_jax.engine.generator import DecodeConfig
from pretty_jax.experiments.alternatives import AlternativeSettings, source_contrasts
from pretty_jax.experiments.priors import PriorSpec
from pretty_jax.tasks.registry import get_task

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.exists(), reason="../shared/data (real sample data) is absent")


def _settings(out: Path, foundation: Path, alternatives: AlternativeSettings, **changes) -> experiments.Settings:
    settings = experiments.Settings(
        task="translation", data=str(DATA / "flores101_devtest"), split="devtest", source_lang="eng",
        target_langs=("fra",), limit=6, template=get_task("translation").default_template, num_shots=0,
        priors=(PriorSpec("none"),), sweep=(), decode=DecodeConfig(max_new_tokens=10, stop_strings=("\n",)),
        batch_size=4, output_dir=out, foundation=str(foundation), dtype="float32", alternatives=alternatives,
    )
    return dataclasses.replace(settings, **changes)


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_source_contrasts_are_other_examples_and_seeded():
    contrast = source_contrasts(7, seed=3)
    assert sorted(contrast) == list(range(7)) and all(j != i for i, j in enumerate(contrast))
    assert contrast == source_contrasts(7, seed=3) and contrast != source_contrasts(7, seed=4)
    with pytest.raises(UserError, match="at least 2 examples"):
        source_contrasts(1, seed=0)


@pytest.mark.slow
@needs_data
def test_alternative_systems_are_stages_scored_like_the_others(jax_checkpoint, jax_sft_stand_in, tmp_path):
    foundation, tuned = jax_checkpoint("llama"), jax_sft_stand_in("llama")
    alternatives = AlternativeSettings(contrastive=("language", "source+language"), contrastive_lambda_language=0.0,
                                       contrastive_lambda_source=0.3, proxy_base=str(tuned), proxy_tuned=str(tuned),
                                       proxy_first_k=(2,))
    out = tmp_path / "out"
    results = pretty_jax.run_experiment(_settings(out, foundation, alternatives))
    systems = results["pairs"]["eng-fra"]["systems"]
    keys = {"none", "contrastive-language0", "contrastive-source0.3-language0", "proxy", "proxy-first2"}
    assert set(systems) == keys
    references = (DATA / "flores101_devtest" / "fra.devtest").read_text(encoding="utf-8").splitlines()[:6]
    plain = _records(out / "eng-fra" / "none.jsonl")
    for key in keys:
        records = _records(out / "eng-fra" / f"{key}.jsonl")
        assert [r["id"] for r in records] == [f"devtest-{i:05d}" for i in range(6)]
        chrf = sacrebleu.corpus_chrf([r["prediction"] for r in records], [references], word_order=2).score
        assert systems[key]["metrics"]["chrf"] == chrf
        if key != "contrastive-source0.3-language0":  # lambda 0, tuned == base: the plain foundation
            assert [r["tokens"] for r in records] == [r["tokens"] for r in plain], key
    contrasted = _records(out / "eng-fra" / "contrastive-source0.3-language0.jsonl")
    assert [r["tokens"] for r in contrasted] != [r["tokens"] for r in plain]
    assert "| foundation + contrastive (source λ=0.3, language λ=0) |" in (out / "report.md").read_text()
    assert systems["proxy-first2"]["system"] == {"kind": "proxy", "first_k": 2}


@pytest.mark.slow
@needs_data
def test_a_contrastive_system_combines_with_a_prior(jax_checkpoint, tmp_path):
    foundation = jax_checkpoint("llama")
    alternatives = AlternativeSettings(contrastive=("language",), contrastive_priors=("oracle-1tok",))
    out = tmp_path / "out"
    pretty_jax.run_experiment(_settings(out, foundation, alternatives, priors=(PriorSpec("none"), PriorSpec("oracle", 1))))
    oracle = _records(out / "eng-fra" / "oracle-1tok.jsonl")
    combined = _records(out / "eng-fra" / "oracle-1tok+contrastive-language0.5.jsonl")
    assert [r["prior_tokens"] for r in combined] == [r["prior_tokens"] for r in oracle]
    assert all(r["prior_tokens"] for r in combined)


def test_bad_alternative_settings_are_refused_by_flag(jax_checkpoint, tmp_path):
    foundation = jax_checkpoint("llama")
    cases = {
        "contrastive=target": AlternativeSettings(contrastive=("target",)),
        "contrastive_priors=sft-1tok: not among the run's priors": AlternativeSettings(
            contrastive=("language",), contrastive_priors=("sft-1tok",)),
        "give both": AlternativeSettings(proxy_tuned=str(foundation)),
        "proxy_first_k needs": AlternativeSettings(proxy_first_k=(2,)),
    }
    for message, alternatives in cases.items():
        with pytest.raises(UserError, match=message):
            _settings(tmp_path / "o", foundation, alternatives).validate()


@needs_data
def test_proxy_models_with_another_vocabulary_are_refused_before_loading(jax_checkpoint, tmp_path, monkeypatch):
    from pretty_jax.experiments import runner

    foundation = jax_checkpoint("llama")
    monkeypatch.setattr(runner, "load_model", lambda *a, **k: pytest.fail("a model was loaded"))
    alternatives = AlternativeSettings(proxy_base=str(jax_checkpoint("bloom")), proxy_tuned=str(foundation))
    with pytest.raises(UserError, match=r"--proxy_base .*bloom|tokenizer .*--proxy_base"):
        pretty_jax.run_experiment(_settings(tmp_path / "o", foundation, alternatives))
    assert not (tmp_path / "o" / "run_config.json").exists()


@pytest.mark.slow
@needs_data
def test_killed_contrastive_run_resumes_to_the_uninterrupted_outputs(jax_checkpoint, tmp_path):
    foundation = jax_checkpoint("llama")
    alternatives = AlternativeSettings(contrastive=("source",))
    pretty_jax.run_experiment(_settings(tmp_path / "whole", foundation, alternatives, limit=20,
                                        decode=DecodeConfig(max_new_tokens=16, stop_strings=("\n",))))
    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "pretty_jax.run", "--dtype=float32", f"--data={DATA / 'flores101_devtest'}",
               "--source_lang=eng", "--target_lang=fra", "--limit=20", f"--foundation={foundation}", "--priors=none",
               "--contrastive=source", "--max_new_tokens=16", "--batch_size=4", f"--output_dir={killed}"]
    # Killed at the progress line of its 4th contrastive output (the stage file may hold
    # fewer lines: outputs are appended in example order).
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in process.stderr:
        if re.search(r"contrastive \(source λ=0\.1\), 1 pairs: ([4-9]|1\d)/20 examples", line):
            process.send_signal(signal.SIGKILL)
            break
    process.wait()
    assert process.returncode == -signal.SIGKILL, "never saw the contrastive stage's 4th output"
    assert not (killed / "results.json").exists()
    resumed = in_process.run(*command[3:])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for name in ("none.jsonl", "contrastive-source0.1.jsonl"):
        assert (killed / "eng-fra" / name).read_bytes() == (tmp_path / "whole" / "eng-fra" / name).read_bytes(), name
    assert json.loads((killed / "results.json").read_text()) == json.loads((tmp_path / "whole" / "results.json").read_text())


@pytest.mark.slow
@needs_data
def test_alignment_of_a_neutral_system_is_the_plain_foundation_s(jax_checkpoint, jax_sft_stand_in, tmp_path):
    """lambda=0 decodes and scores as the plain foundation: its KL to the SFT model and
    top-K agreement along its outputs are the k=0 statistics of the alignment runner."""
    foundation, sft = jax_checkpoint("llama"), jax_sft_stand_in("llama")
    alternatives = AlternativeSettings(contrastive=("language", "source"), contrastive_lambda_language=0.0)
    results = pretty_jax.run_experiment(_settings(tmp_path / "o", foundation, alternatives, sft=str(sft), align=True,
                                                  align_prior_tokens=(0,)))
    pair = results["pairs"]["eng-fra"]
    plain, neutral = pair["alignment"]["0"], pair["systems"]["contrastive-language0"]["alignment"]
    assert neutral["steps"] == plain["steps"] > 0
    assert neutral["topk_agreement"] == plain["topk_agreement"]
    for name in ("kl_sft_lm", "kl_lm_sft", "p_lm_of_sft"):
        assert neutral[name] == pytest.approx(plain[name], rel=1e-4, abs=1e-5), name
    assert pair["systems"]["contrastive-source0.1"]["alignment"]["kl_sft_lm"] != pytest.approx(plain["kl_sft_lm"])
