"""`python -m pretty_jax.make_sft_data`: parallel text files -> the trainer's SFT jsonl, in
the experiments' prompt style, with held-out source lines kept out of training in every
target language; bad input refused in one line before anything is written."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import command_server

from pretty_jax.core.errors import UserError
from pretty_jax.tasks import format_prompt
from pretty_jax.tasks.flores import FloresTask
from pretty_jax.training import data, parallel_text

TEMPLATE = r"Translate the following English text into {tgt_lang}.\nEnglish: {source}\n{tgt_lang}:"
ENGLISH = ["The cat sleeps.", "", "It rains.", "The market opens.", "We eat bread.", "Good night."]
GERMAN = ["Die Katze schläft.", "Leer", "Es regnet.", "Der Markt öffnet.", "Wir essen Brot.", "Gute Nacht."]
FRENCH = ["Le chat dort.", "Vide", "Il pleut.", "Le marché ouvre.", "Nous mangeons du pain.", "Bonne nuit."]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    for iso, lines in (("en", ENGLISH), ("de", GERMAN), ("fr", FRENCH)):
        _write(tmp_path / f"news.{iso}", lines)
    return tmp_path


make_sft_data_cli = command_server.fixture("pretty_jax.make_sft_data")  # one process serving the module's runs


def _make(cli, corpus: Path, *extra: str) -> subprocess.CompletedProcess:
    """`cli` (make_sft_data_cli) on the corpus of `corpus`'s news files, with `extra` flags."""
    flags = [
        "--target_lang=deu,fra", f"--source_files={corpus}/news.{{source_iso}}",
        f"--target_files={corpus}/news.{{target_iso}}", f"--prompt_template={TEMPLATE}",
        f"--output_dir={corpus}/out", *extra,
    ]
    return cli(*flags)


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_records_prompt_as_the_experiment_does_and_answer_with_the_translation(make_sft_data_cli, corpus):
    result = _make(make_sft_data_cli, corpus)
    assert result.returncode == 0, result.stderr
    records = _records(corpus / "out" / "train.jsonl")
    assert len(records) == 2 * 5  # the line blank in English is skipped
    first = records[0]
    assert first["prompt"] == "Translate the following English text into German.\nEnglish: The cat sleeps.\nGerman:"
    assert first["response"] == " Die Katze schläft."
    assert (first["id"], first["target_lang"]) == ("news.de:1", "deu")
    french = [r for r in records if r["target_lang"] == "fra"]
    assert french[-1]["prompt"].endswith("English: Good night.\nFrench:") and french[-1]["response"] == " Bonne nuit."
    # The experiment's zero-shot prompt for the same sentence is the training prompt.
    flores = corpus / "flores"
    flores.mkdir()
    _write(flores / "eng.devtest", ENGLISH[:1])
    _write(flores / "deu.devtest", GERMAN[:1])
    task = FloresTask(flores, "devtest", "eng", "deu")
    template = TEMPLATE.replace(r"\n", "\n")
    assert first["prompt"] == format_prompt(template, task.examples()[0], task.prompt_fields())
    # The trainer reads it.
    assert data.read_sft_examples(corpus / "out" / "train.jsonl")[0] == (first["prompt"], first["response"])


@pytest.mark.slow
def test_held_out_lines_are_the_same_sentences_in_every_language_and_never_trained(make_sft_data_cli, corpus):
    result = _make(make_sft_data_cli, corpus, "--eval_lines=2", "--seed=5")
    assert result.returncode == 0, result.stderr
    train, held_out = _records(corpus / "out" / "train.jsonl"), _records(corpus / "out" / "eval.jsonl")
    assert (len(train), len(held_out)) == (2 * 3, 2 * 2)
    source_of = lambda r: r["prompt"].split("English: ")[1].split("\n")[0]
    held = {source_of(r) for r in held_out}
    assert len(held) == 2
    assert {source_of(r) for r in held_out if r["target_lang"] == "deu"} == held
    assert {source_of(r) for r in held_out if r["target_lang"] == "fra"} == held
    assert not held & {source_of(r) for r in train}
    again = _make(make_sft_data_cli, corpus, "--eval_lines=2", "--seed=5")  # the same command replaces its own files
    assert again.returncode == 0 and _records(corpus / "out" / "eval.jsonl") == held_out
    without = _make(make_sft_data_cli, corpus)  # no held-out lines: the earlier eval.jsonl (now trained on) goes
    assert without.returncode == 0 and not (corpus / "out" / "eval.jsonl").exists()
    assert len(_records(corpus / "out" / "train.jsonl")) == 2 * 5


def test_misaligned_files_are_refused_naming_both_before_anything_is_written(make_sft_data_cli, corpus):
    _write(corpus / "news.fr", FRENCH[:-1])
    result = _make(make_sft_data_cli, corpus)
    assert result.returncode == 2
    assert f"error: {corpus}/news.en has 6 lines but {corpus}/news.fr has 5" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (corpus / "out").exists()


def test_a_folder_holding_the_users_files_is_refused_and_left_as_it_was(make_sft_data_cli, corpus):
    (corpus / "out").mkdir()
    mine = _write(corpus / "out" / "train.jsonl", ["my own file"])
    result = _make(make_sft_data_cli, corpus)
    assert result.returncode == 2 and "--output_dir=" in result.stderr and "holds no pretty_jax output" in result.stderr
    assert mine.read_text() == "my own file\n" and sorted(p.name for p in (corpus / "out").iterdir()) == ["train.jsonl"]
    (corpus / "sub").mkdir()
    (corpus / "sub" / "train.jsonl").symlink_to(mine)  # a planted link is never written through
    assert _make(make_sft_data_cli, corpus, f"--output_dir={corpus}/sub").returncode == 2
    assert mine.read_text() == "my own file\n"


@pytest.mark.slow
def test_flags_that_cannot_work_are_refused_by_name(make_sft_data_cli, corpus):
    no_placeholder = _make(make_sft_data_cli, corpus, f"--target_files={corpus}/news.de")
    assert no_placeholder.returncode == 2 and "is the same file for every --target_lang" in no_placeholder.stderr
    unknown = _make(make_sft_data_cli, corpus, "--prompt_template={source} into {language}")
    assert unknown.returncode == 2 and "--prompt_template=" in unknown.stderr and "{language}" in unknown.stderr
    too_many = _make(make_sft_data_cli, corpus, "--eval_lines=5")
    assert too_many.returncode == 2 and "--eval_lines=5 must be >= 0 and below the 5 source lines" in too_many.stderr
    for result in (no_placeholder, unknown, too_many):
        assert "Traceback" not in result.stderr


def test_reading_counts_files_and_skips_blank_pairs(tmp_path):
    source = _write(tmp_path / "a.en", ["one", " ", "three"])
    target = _write(tmp_path / "a.de", ["eins", "zwei", ""])
    assert parallel_text.read_parallel_files([source], [target]) == [(f"{source}:1", "a.de:1", "one", "eins")]
    with pytest.raises(UserError, match="--source_files gives 1 files but --target_files 2"):
        parallel_text.read_parallel_files([source], [target, target])
    with pytest.raises(UserError, match="no line holds a sentence on both sides"):
        parallel_text.read_parallel_files([_write(tmp_path / "b.en", ["x"])], [_write(tmp_path / "b.de", [" "])])
