"""Inputs that cannot silently mismatch, checked before anything is recorded: a refined
file per language pair, prompt templates that show the example, stop strings and align
prompts refused before the output directory is touched (a refused run leaves it byte
for byte as it was, and the corrected command then runs without --overwrite), and a
run whose terminal cannot print its outputs still exits 0."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import in_process
import pytest

from pretty_jax.core.manifest import LOCK

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not DATA.exists(), reason="../shared/data (real sample data) is absent")
FLORES = DATA / "flores101_devtest"


@pytest.fixture(scope="module")
def pair(jax_checkpoint, jax_sft_stand_in):
    return jax_checkpoint("llama"), jax_sft_stand_in("llama")


def _flags(pair, out: Path, *extra: str) -> list[str]:
    foundation, sft = pair
    return ["--dtype=float32", f"--data={FLORES}", "--source_lang=eng", "--target_lang=fra", "--limit=3",
            f"--foundation={foundation}", f"--sft={sft}", "--priors=none,sft", "--max_new_tokens=4",
            "--batch_size=4", f"--output_dir={out}", *extra]


def _ok(*flags: str) -> subprocess.CompletedProcess:
    result = in_process.run(*flags)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _refused(*flags: str) -> str:
    """Runs a command that must fail as a one-line user error before any model loads;
    returns that line."""
    result = in_process.run(*flags)
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr and "models loaded" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


def _digests(directory: Path) -> dict[str, str] | None:
    """Every file and folder under `directory` -> the sha256 of its bytes ("" for a
    folder); None when `directory` does not exist."""
    if not directory.exists():
        return None
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
            for p in sorted(directory.rglob("*"))}


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# One refined file per language pair --------------------------------------------------


def _refined(path: Path, text: str) -> None:
    path.write_text("".join(json.dumps({"id": f"devtest-{i:05d}", "text": text}, ensure_ascii=False) + "\n"
                            for i in range(3)), encoding="utf-8")


@pytest.mark.slow
def test_a_refined_file_for_two_targets_needs_a_target_placeholder(pair, tmp_path):
    _refined(tmp_path / "refined.deu.jsonl", "Die Katze")
    _refined(tmp_path / "refined.fra.jsonl", "Le chat")
    out = tmp_path / "out"
    common = ["--target_lang=deu,fra", "--priors=none,refined"]
    line = _refused(*_flags(pair, out, *common, f"--refined_file={tmp_path / 'refined.deu.jsonl'}"))
    assert line.startswith(f"error: --refined_file={tmp_path / 'refined.deu.jsonl'} is one file")
    assert "for the pairs eng-deu and eng-fra" in line and "{target_lang} or {target_iso}" in line
    assert _digests(out) is None
    _ok(*_flags(pair, out, *common, f"--refined_file={tmp_path / 'refined.{target_lang}.jsonl'}"))
    assert {r["prior_text"] for r in _records(out / "eng-deu" / "refined-1word.jsonl")} == {"Die"}
    assert {r["prior_text"] for r in _records(out / "eng-fra" / "refined-1word.jsonl")} == {"Le"}
    stages = json.loads((out / "run_config.json").read_text())["stages"]
    assert stages["eng-fra/refined-1word.jsonl"]["refined_file"]["path"] == str(tmp_path / "refined.fra.jsonl")


def test_duplicate_refined_ids_are_refused_naming_both_lines(pair, tmp_path):
    refined = tmp_path / "refined.jsonl"
    _refined(refined, "Le chat")
    refined.write_text(refined.read_text() + '{"id": "devtest-00001", "text": "La maison"}\n')
    line = _refused(*_flags(pair, tmp_path / "out", "--priors=none,refined", f"--refined_file={refined}"))
    assert line == f"error: {refined}:4: id 'devtest-00001' repeats line 2; give every line its own id"
    assert _digests(tmp_path / "out") is None


@pytest.mark.slow
def test_refined_ids_that_match_no_evaluated_example_are_logged(pair, tmp_path):
    refined = tmp_path / "refined.jsonl"
    refined.write_text("".join(json.dumps({"id": f"devtest-{i:05d}", "text": "Le chat"}) + "\n" for i in range(7)))
    result = _ok(*_flags(pair, tmp_path / "out", "--priors=none,refined", f"--refined_file={refined}"))
    assert "holds 4 ids that match no evaluated example (e.g. devtest-00003, devtest-00004, devtest-00005)" \
        in result.stderr


def test_one_dictionary_for_two_targets_is_refused(pair, tmp_path):
    line = _refused(*_flags(pair, tmp_path / "out", "--target_lang=deu,fra", "--priors=none,dictionary",
                            f"--dictionary={DATA / 'muse' / 'en-de.txt'}"))
    assert line.startswith(f"error: --dictionary={DATA / 'muse' / 'en-de.txt'} is one file")


# Templates and stop strings, checked before the output directory is touched ------------


MISTAKES = {
    "--prompt_template={sourc} ->": "error: --prompt_template='{sourc} ->' uses {sourc}, which this task does not "
                                    "fill; known placeholders: {source}, {src_lang}, {tgt_lang}",
    "--prompt_template=Translate into {tgt_lang}:": "error: --prompt_template='Translate into {tgt_lang}:' would "
                                                    "give every example the same prompt",
    "--prompt_template=Translate: {source:.0}": "would give every example the same prompt",
    "--sft_prompt_template=Translate into {tgt_lang}:": "error: --sft_prompt_template='Translate into {tgt_lang}:' "
                                                        "would give every example the same prompt",
    "--sft_prompt_format=chat": "error: --sft_prompt_format=chat: the tokenizer of --sft=",
    "--stop_strings=\\n,": "error: --stop_strings='\\n,': an empty stop string would end every output at once",
}


@pytest.mark.slow
@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_a_bad_template_or_stop_string_is_refused_before_the_output_directory_exists(pair, tmp_path, mistake):
    out = tmp_path / "out"
    assert MISTAKES[mistake] in _refused(*_flags(pair, out, mistake))
    assert _digests(out) is None


@pytest.mark.slow
def test_the_corrected_command_runs_without_overwrite(pair, tmp_path):
    out = tmp_path / "out"
    _refused(*_flags(pair, out, "--prompt_template={sourc} -> {tgt_lang}:"))
    _ok(*_flags(pair, out, "--prompt_template={source} -> {tgt_lang}:"))
    assert [r["id"] for r in _records(out / "eng-fra" / "none.jsonl")] == ["devtest-00000", "devtest-00001",
                                                                           "devtest-00002"]
    assert json.loads((out / "run_config.json").read_text())["settings"]["prompt_template"] == "{source} -> {tgt_lang}:"


@pytest.mark.slow
def test_a_finished_run_stays_byte_identical_through_every_refusal(pair, tmp_path):
    out = tmp_path / "out"
    _ok(*_flags(pair, out))
    before = _digests(out)
    for mistake, message in MISTAKES.items():
        assert message in _refused(*_flags(pair, out, mistake)), mistake
        assert _digests(out) == before, mistake
    _ok(*_flags(pair, out))  # the same command again: nothing to do, nothing changed but the lock
    assert {k: v for k, v in _digests(out).items() if k != LOCK} == {k: v for k, v in before.items() if k != LOCK}


def test_a_dry_run_refuses_a_template_without_source(pair, tmp_path):
    line = _refused(*_flags(pair, tmp_path / "out", "--prompt_template=Translate:", "--dry_run"))
    assert line == ("error: --prompt_template='Translate:' would give every example the same prompt: put {source} "
                    "where the example's text goes")


# Align mode -----------------------------------------------------------------------------


@pytest.mark.parametrize("prompts, extra, message", [
    ('{"id": "a", "prompt": "Hi"}\n{"id": "b", "prompt": "Bye", "reference": 3}\n', (),
     "prompts.jsonl:2: field 'reference' must be a string where given, but it is a int"),
    ('{"id": "a", "prompt": ""}\n', (), 'prompts.jsonl:1: "prompt" is empty'),
    ('{"id": "a", "prompt": "Hi", "reference": "Salut"}\n{"id": "b", "prompt": "Bye"}\n',
     ("--trajectory=reference",), "prompts.jsonl: example 'b' has none"),
    ('{"id": "a", "prompt": "Hi"}\n', ("--stop_strings=,",), "--stop_strings=',': an empty stop string"),
    ('{"id": "a", "prompt": "Hi"}\n', ("--sft_prompt_template=Say:",), "--sft_prompt_template / --sft_prompt_format: "
                                                                       "prompt template 'Say:' would give every"),
])
@pytest.mark.slow
def test_align_mode_refuses_bad_prompts_before_the_output_directory_exists(pair, tmp_path, prompts, extra, message):
    foundation, sft = pair
    path = tmp_path / "prompts.jsonl"
    path.write_text(prompts, encoding="utf-8")
    line = _refused("--mode=align", "--dtype=float32", f"--foundation={foundation}", f"--sft={sft}",
                    f"--prompts_file={path}", "--max_new_tokens=4", f"--output_dir={tmp_path / 'out'}", *extra)
    assert message in line
    assert _digests(tmp_path / "out") is None


# A terminal that cannot show the outputs ---------------------------------------------


@pytest.mark.slow
def test_a_latin1_stdout_prints_escapes_and_exits_0(pair, tmp_path):
    out = tmp_path / "out"
    # A process of its own: its streams are opened with the terminal's encoding.
    command = [sys.executable, "-m", "pretty_jax.run", *_flags(pair, out, "--target_lang=zho_simpl", "--priors=none")]
    result = subprocess.run(command, capture_output=True, encoding="latin-1", timeout=900, cwd=ROOT,
                            env=os.environ | {"PYTHONIOENCODING": "latin-1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "\\u2192" in result.stdout  # the report's arrow, escaped
    assert "±" in result.stdout  # what latin-1 holds is printed as it is
    assert result.stdout.rstrip().endswith(f"wrote {out / 'report.md'} and results.json")
