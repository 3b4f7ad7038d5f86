"""The experiment runner end to end on tiny models and the real sample data: every
prior, every task, scores equal to sacrebleu's on the same outputs, the report and
results. Experiments run in-process through the public API; the command line (in
process too) only where it is the subject (exit statuses). Resuming after kill -9 is
test_faults.py's."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import in_process
import numpy as np
import pytest
import sacrebleu

import pretty_jax
from pretty_jax import experiments
from pretty_jax.checkpoints.tokenizer import continuation_ids, load_tokenizer
from pretty_jax.core.errors import UserError
from pretty_jax.engine.generator import DecodeConfig
from pretty_jax.experiments.priors import PriorSpec, first_words
from pretty_jax.tasks.metrics import pos_accuracy
from pretty_jax.tasks.pos import read_tagged
from pretty_jax.tasks.registry import get_task

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.exists(), reason="../shared/data (real sample data) is absent")


@pytest.fixture(scope="module")
def pair(jax_checkpoint, jax_sft_stand_in):
    """Tiny LLaMA foundation and a perturbed copy standing in for its SFT model."""
    return jax_checkpoint("llama"), jax_sft_stand_in("llama")


def _experiment(out: Path, foundation: Path, sft: Path | None = None, max_new_tokens: int = 8, **changes) -> dict:
    """Runs an experiment in-process with the command line's defaults (Flores eng ->
    zho_simpl translation, every answer one line, batches of 4); returns results.json."""
    settings = experiments.Settings(
        task="translation", data=str(DATA / "flores101_devtest"), split="devtest", source_lang="eng",
        target_langs=("zho_simpl",), limit=None, template=get_task(changes.get("task", "translation")).default_template,
        num_shots=0, priors=(PriorSpec("none"), PriorSpec("sft", 1)), sweep=(),
        decode=DecodeConfig(max_new_tokens=max_new_tokens, stop_strings=("\n",)), batch_size=4, output_dir=out,
        foundation=str(foundation), sft=None if sft is None else str(sft), dtype="float32",
    )
    settings = dataclasses.replace(settings, **changes)
    settings.validate()
    return pretty_jax.run_experiment(settings)


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
@needs_data
def test_translation_with_every_prior_scores_like_sacrebleu(pair, tmp_path):
    foundation, sft = pair
    refined = tmp_path / "refined.jsonl"
    refined.write_text("\n".join(json.dumps({"id": f"devtest-{i:05d}", "text": "Die Katze schläft."}) for i in range(6)))
    out = tmp_path / "out"
    priors = (PriorSpec("none"), PriorSpec("sft", 1), PriorSpec("refined", 1, "words"),
              PriorSpec("dictionary", 1, "words"), PriorSpec("oracle", 1))
    returned = _experiment(out, foundation, sft, max_new_tokens=12, target_langs=("deu",), limit=6, priors=priors,
                           refined_file=str(refined), dictionary=str(DATA / "muse" / "{source_iso}-{target_iso}.txt"),
                           sweep=(0, 1, 2))
    results = json.loads((out / "results.json").read_text())
    assert returned == results
    systems = results["pairs"]["eng-deu"]["systems"]
    assert set(systems) == {"none", "sft-1tok", "refined-1word", "dictionary-1word", "oracle-1tok", "sft-2tok", "sft"}
    references = (DATA / "flores101_devtest" / "deu.devtest").read_text(encoding="utf-8").splitlines()[:6]
    for key, system in systems.items():
        records = _records(out / "eng-deu" / f"{key}.jsonl")
        assert [r["id"] for r in records] == [f"devtest-{i:05d}" for i in range(6)]
        predictions = [r["prediction"] for r in records]
        assert system["metrics"]["bleu"] == sacrebleu.corpus_bleu(predictions, [references]).score
        assert system["metrics"]["chrf"] == sacrebleu.corpus_chrf(predictions, [references], word_order=2).score
    sft_records = _records(out / "eng-deu" / "sft.jsonl")
    for record, sft_record in zip(_records(out / "eng-deu" / "sft-1tok.jsonl"), sft_records):
        assert record["prior_tokens"] == sft_record["tokens"][:1]
    for record in _records(out / "eng-deu" / "refined-1word.jsonl"):
        assert record["prior_text"] == "Die" and record["text"].startswith("Die")
    dictionary = _records(out / "eng-deu" / "dictionary-1word.jsonl")
    assert systems["dictionary-1word"]["prior_found_rate"] == np.mean([r["prior_found"] for r in dictionary])
    report = (out / "report.md").read_text()
    assert "| foundation + dictionary prior (1 word) |" in report and "SFT model" in report
    assert "chrF++ against the number of SFT prior tokens" in report
    assert (out / "prior_sweep.png").stat().st_size > 5000
    assert [p["prior_tokens"] for p in results["sweep"]["eng-deu"]] == [0, 1, 2]


@pytest.mark.slow
@needs_data
def test_pos_with_lexicon_prior_and_summarization(pair, tmp_path):
    foundation, sft = pair
    out = tmp_path / "pos"
    word_priors = (PriorSpec("none"), PriorSpec("dictionary", 2, "words"), PriorSpec("oracle", 2, "words"))
    _experiment(out, foundation, max_new_tokens=16, task="pos", data=str(DATA / "ud" / "fr_gsd-ud-dev.conllu"),
                target_langs=("fra",), limit=5, priors=word_priors, lexicon_data=str(DATA / "ud" / "fr_gsd-ud-dev.conllu"))
    systems = json.loads((out / "results.json").read_text())["pairs"]["fra-fra"]["systems"]
    gold = [sentence[1] for sentence in read_tagged(DATA / "ud" / "fr_gsd-ud-dev.conllu")[:5]]
    for key in ("none", "dictionary-2word", "oracle-2word"):
        records = _records(out / "fra-fra" / f"{key}.jsonl")
        expected = pos_accuracy([r["prediction"].split() for r in records], gold)["pos_accuracy"]
        assert systems[key]["metrics"]["pos_accuracy"] == expected
    for record, tags in zip(_records(out / "fra-fra" / "oracle-2word.jsonl"), gold):
        assert record["prior_text"] == " ".join(tags[:2])
    lexicon_priors = [r["prior_text"] for r in _records(out / "fra-fra" / "dictionary-2word.jsonl")]
    assert sum(p == " ".join(t[:2]) for p, t in zip(lexicon_priors, gold)) >= 3  # the lexicon is mostly right

    english = (DATA / "flores101_devtest" / "eng.devtest").read_text(encoding="utf-8").splitlines()
    chinese = (DATA / "flores101_devtest" / "zho_simpl.devtest").read_text(encoding="utf-8").splitlines()
    crosssum = tmp_path / "crosssum.jsonl"
    crosssum.write_text("\n".join(
        json.dumps({"source_url": str(i), "target_url": str(i), "text": " ".join(english[i : i + 30]), "summary": chinese[i]},
                   ensure_ascii=False) for i in range(4)), encoding="utf-8")
    out = tmp_path / "sum"
    _experiment(out, foundation, task="summarization", data=str(crosssum), priors=(PriorSpec("none"), PriorSpec("oracle", 1)))
    summary = json.loads((out / "results.json").read_text())["pairs"]["eng-zho_simpl"]
    assert summary["truncated_documents"] == 4  # 30 sentences do not fit a 256-token context
    assert set(summary["systems"]["none"]["metrics"]) >= {"rouge1", "rouge2", "rougeL", "target_language_rate"}


@needs_data
def test_differing_tokenizers_need_word_priors(pair, jax_checkpoint, tmp_path):
    foundation, _ = pair
    settings = dict(target_langs=("fra",), limit=4)
    with pytest.raises(UserError, match="the tokenizers differ at id"):
        _experiment(tmp_path / "a", foundation, jax_checkpoint("bloom"), **settings)
    _experiment(tmp_path / "b", foundation, jax_checkpoint("bloom"), priors=(PriorSpec("none"), PriorSpec("sft", 1, "words")),
                **settings)
    for record in _records(tmp_path / "b" / "eng-fra" / "sft-1word.jsonl"):
        assert record["text"].startswith(record["prior_text"])


def test_missing_data_is_reported_with_the_path(pair, tmp_path):
    result = in_process.run("--dtype=float32", f"--data={tmp_path / 'nowhere'}", f"--foundation={pair[0]}",
                            "--priors=none", f"--output_dir={tmp_path / 'o'}")
    assert result.returncode == 2 and f"Flores data folder {tmp_path / 'nowhere'} does not exist" in result.stderr


@pytest.mark.parametrize("preset,expected_piece", [("llama", "▁"), ("bloom", "Ġ")])
def test_word_priors_are_tokenised_as_the_answer_continues_the_prompt(jax_checkpoint, preset, expected_piece):
    tokenizer = load_tokenizer(jax_checkpoint(preset))
    prompt = "Translate into German.\nGerman:"
    ids = continuation_ids(tokenizer, prompt, "Der Zug")
    joint = tokenizer(prompt + " Der Zug", add_special_tokens=False).input_ids
    assert joint[-len(ids) :] == ids
    assert tokenizer.convert_ids_to_tokens(ids)[0].startswith(expected_piece)
    alone = tokenizer("Der Zug", add_special_tokens=False).input_ids
    assert (alone == ids) == (preset == "llama")  # byte-level BPE needs the context's space


def test_first_words_and_prior_names():
    assert first_words("  Die Katze schläft.", 2, "deu") == "Die Katze"
    assert first_words("猫在温暖的窗台上睡觉。", 2, "zho_simpl") == "猫在"
    assert PriorSpec("sft", 2, "tokens").key == "sft-2tok" and PriorSpec("dictionary", 1, "words").key == "dictionary-1word"
