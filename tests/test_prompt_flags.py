"""Prompt templates a flagfile can express: --prompt_template with the escapes of
--stop_strings, --prompt_template_file, and the dry run printing the first prompt as
the model will read it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import in_process
import pytest

SOURCES = ["The cat sleeps.", "It rains today."]
REFERENCES = ["Le chat dort.", "Il pleut aujourd'hui."]


@pytest.fixture
def flores(tmp_path, jax_checkpoint) -> Path:
    """A Flores folder, and the tiny model the dry run's --foundation names (tmp_path/model)."""
    (tmp_path / "model").symlink_to(jax_checkpoint("llama"), target_is_directory=True)
    folder = tmp_path / "flores"
    folder.mkdir()
    (folder / "eng.devtest").write_text("\n".join(SOURCES) + "\n", encoding="utf-8")
    (folder / "fra.devtest").write_text("\n".join(REFERENCES) + "\n", encoding="utf-8")
    return folder


def dry_run(tmp_path: Path, flores: Path, *lines: str) -> subprocess.CompletedProcess:
    """`run --dry_run` of a flagfile holding `lines` after a translation experiment's."""
    flagfile = tmp_path / "experiment.cfg"
    flagfile.write_text("\n".join([
        "--mode=experiment", "--task=translation", f"--foundation={tmp_path / 'model'}", f"--data={flores}",
        "--split=devtest", "--source_lang=eng", "--target_lang=fra", "--priors=none",
        f"--output_dir={tmp_path / 'out'}", *lines,
    ]) + "\n", encoding="utf-8")
    return in_process.run(f"--flagfile={flagfile}", "--dry_run")


def shown_prompt(stdout: str) -> str:
    """The prompt the dry run printed between its marker lines."""
    return stdout.split("----\n", 1)[1].rsplit("\n----\n", 1)[0]


def test_flagfile_template_escapes_become_the_characters(tmp_path, flores):
    result = dry_run(tmp_path, flores, r"--prompt_template=Translate into {tgt_lang}.\nEnglish: {source}\t\\\n{tgt_lang}:")
    assert result.returncode == 0, result.stderr
    expected = "Translate into French.\nEnglish: The cat sleeps.\t\\\nFrench:"
    assert shown_prompt(result.stdout) == expected
    assert f"as a string: {expected!r}" in result.stdout
    assert "first prompt (eng-fra, example devtest-00000)" in result.stdout


def test_template_file_is_read_verbatim_few_shot_included(tmp_path, flores):
    template = "Example: two \\n stays two characters\n\nEnglish: {source}\n{tgt_lang}:"
    (tmp_path / "prompt.txt").write_text(template + "\n", encoding="utf-8")  # the editor's final newline
    result = dry_run(tmp_path, flores, f"--prompt_template_file={tmp_path / 'prompt.txt'}", "--num_shots=1")
    assert result.returncode == 0, result.stderr
    shot = template.format(source=SOURCES[0], tgt_lang="French") + " " + REFERENCES[0] + "\n\n"
    assert shown_prompt(result.stdout) == shot + template.format(source=SOURCES[1], tgt_lang="French")
    assert "example devtest-00001" in result.stdout


@pytest.mark.parametrize(
    "lines, message",
    [
        (["--prompt_template={{source}}", "--prompt_template_file={file}"],
         "error: --prompt_template and --prompt_template_file: give one, not both"),
        (["--prompt_template_file={missing}"], "error: --prompt_template_file={missing} does not exist"),
        (["--prompt_template_file={latin1}"], "error: --prompt_template_file={latin1} is not UTF-8 text"),
    ],
)
def test_template_file_errors_name_the_flag_and_file(tmp_path, flores, lines, message):
    paths = {"file": tmp_path / "prompt.txt", "missing": tmp_path / "nowhere.txt", "latin1": tmp_path / "latin1.txt"}
    paths["file"].write_text("{source}", encoding="utf-8")
    paths["latin1"].write_bytes("Traduis en français : {source}".encode("latin-1"))
    result = dry_run(tmp_path, flores, *[line.format(**paths) for line in lines])
    assert result.returncode == 2
    assert message.format(**paths) in result.stderr
    assert not (tmp_path / "out").exists()
