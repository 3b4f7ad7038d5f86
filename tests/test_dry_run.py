"""`run --dry_run` refuses what the run would refuse, before any model loads and with
nothing written; and the defaults a new user meets first (item 6 of the first-hour
issue): the did-you-mean of a language, the priors hint, parity's dtype, the demo's
figures line and progress lines."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import in_process
import pytest
from test_chat import CHATML, with_chat_template

from pretty_jax.checkpoints import loading


@pytest.fixture
def inputs(tmp_path, jax_checkpoint, jax_sft_stand_in) -> dict[str, Path]:
    flores = tmp_path / "flores"
    flores.mkdir()
    for code, text in (("eng", "The cat sleeps.\nIt rains."), ("fra", "Le chat dort.\nIl pleut.")):
        (flores / f"{code}.devtest").write_text(text + "\n", encoding="utf-8")
    (tmp_path / "en-fr.txt").write_text("cat chat\n", encoding="utf-8")
    return {"foundation": jax_checkpoint("llama"), "sft": with_chat_template(jax_sft_stand_in("llama"),
                                                                            tmp_path / "sft", "chatml"),
            "data": flores, "dictionary": tmp_path / "en-fr.txt", "out": tmp_path / "out"}


def _dry_run(inputs: dict[str, Path], *extra: str) -> subprocess.CompletedProcess:
    flags = [f"--{name}={inputs[name]}" for name in ("foundation", "sft", "data", "dictionary")]
    return in_process.run("--dry_run", *flags, "--target_lang=fra", "--priors=none,sft,dictionary,oracle",
                          f"--output_dir={inputs['out']}", *extra)


@pytest.mark.slow
def test_a_dry_run_with_every_input_passes_shows_each_models_prompt_and_writes_nothing(inputs):
    result = _dry_run(inputs, "--sft_system_message=Be brief.")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "eng-fra: " + str(inputs["data"]) + " (2 examples)" in result.stdout
    assert "first prompt (eng-fra, example devtest-00000), as fed before any prior:" in result.stdout
    assert "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n" in result.stdout  # the chat template
    assert result.stdout.strip().splitlines()[-1].startswith("dry run passed")
    assert not inputs["out"].exists()


def _error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "Traceback" not in result.stderr
    return line


def test_a_dry_run_refuses_a_foundation_that_does_not_exist(inputs, tmp_path):
    inputs["foundation"] = tmp_path / "bloom-7b1"
    assert _error(_dry_run(inputs)) == (f"error: --foundation={tmp_path / 'bloom-7b1'} does not exist; "
                                        + loading.WHERE_MODELS_COME_FROM)
    assert not inputs["out"].exists()


def test_a_dry_run_refuses_data_in_the_wrong_folder(inputs, tmp_path):
    inputs["data"] = tmp_path  # the folder above the Flores files
    assert _error(_dry_run(inputs)).startswith(f"error: no Flores devtest file for English under {tmp_path}")


@pytest.mark.slow
def test_a_dry_run_refuses_a_chat_template_that_fails_to_render(inputs, tmp_path):
    inputs["sft"] = with_chat_template(inputs["foundation"], tmp_path / "broken", "chatml",
                                       "{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system role') }}"
                                       "{% endif %}" + CHATML)
    line = _error(_dry_run(inputs, "--sft_system_message=Be brief."))
    assert "chat template in" in line and "failed to render" in line and "no system role" in line


def test_a_dry_run_refuses_a_missing_dictionary(inputs, tmp_path):
    inputs["dictionary"] = tmp_path / "muse.txt"
    assert f"MUSE dictionary {tmp_path / 'muse.txt'} does not exist" in _error(_dry_run(inputs))


def test_a_language_name_gets_its_code_suggested(inputs):
    line = _error(_dry_run(inputs, "--target_lang=french"))
    assert line.startswith("error: unknown language code 'french': did you mean fra (French)?")
    assert "zho_simpl" not in line  # no list of a hundred codes


def test_a_user_with_only_a_foundation_model_is_told_which_priors_work(inputs):
    result = in_process.run("--dry_run", f"--foundation={inputs['foundation']}", f"--data={inputs['data']}",
                            "--target_lang=fra", f"--output_dir={inputs['out']}")
    line = _error(result)
    assert line.startswith("error: --sft is required by the sft prior") and "--priors=none,oracle" in line


def test_the_demo_summary_names_only_the_figures_the_run_wrote(tmp_path):
    from pretty_jax.organism.demo import _figures

    assert _figures(tmp_path) == ""  # --noalign and no sweep: no figures line
    (tmp_path / "prior_sweep.png").write_bytes(b"")
    assert _figures(tmp_path) == f"   figures: {tmp_path / 'prior_sweep.png'}"


def test_the_demos_log_filter_passes_progress_lines_at_most_every_interval():
    from pretty_jax.cli.run import _ProgressLines
    from pretty_jax.core import progress

    shown = _ProgressLines(interval=10.0)

    def line(done: int, at: float, path: str = progress.__file__, level: int = logging.INFO) -> bool:
        record = logging.LogRecord("absl", level, path, 1, "%s: %d/%d", ("pretrain", done, 100), None)
        record.created = at
        return shown.filter(record)

    assert [line(1, 0.0), line(2, 5.0), line(3, 11.0), line(100, 12.0)] == [True, False, True, True]
    assert not line(4, 50.0, path=__file__)  # another INFO log: hidden
    assert line(4, 50.0, path=__file__, level=logging.WARNING)
