"""--help and --helpfull of every command: its own flags, grouped, exit 0; and the one
"error:" prefix of a bad command line."""

from __future__ import annotations

import subprocess
import sys

import pytest

# command -> flags its --help must name
MAIN_FLAGS = {
    "run": ["--mode", "--foundation", "--sft", "--data", "--output_dir", "--[no]dry_run", "--priors", "--batch_size"],
    "train": ["--output_dir", "--train_file", "--init", "--lora_rank", "--learning_rate"],
    "convert": ["--hf_dir", "--gguf", "--out_dir", "--dtype"],
    "parity": ["--hf_dir", "--gguf", "--ours", "--dtype", "--max_rel_tol"],
    "tiny": ["--preset", "--out_dir"],
    "data": ["--datasets", "--cache_dir", "--mirror"],
    "generate": ["--model", "--prompt", "--prior", "--sft", "--top_k"],
}
ABSL_FLAGS = ["--verbosity", "--logtostderr", "--[no]pdb_post_mortem", "--[no]only_check_args"]


def _command(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"pretty_jax.{name}", *args], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("name", MAIN_FLAGS)
def test_help_lists_the_commands_own_flags_and_no_absl_flags(name):
    result = _command(name, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m pretty_jax.{name} ")
    for flag in MAIN_FLAGS[name]:
        assert f"\n  {flag}" in result.stdout, flag
    for flag in ABSL_FLAGS:
        assert flag not in result.stdout, flag
    assert "see the module docstring" not in result.stdout and "see pretty_jax/cli" not in result.stdout


def test_run_help_groups_the_flags_marks_the_required_ones_and_explains_the_modes():
    shown = _command("run", "--help").stdout
    assert shown.index("\nmodels:\n") < shown.index("\npriors:\n") < shown.index("\ndecoding:\n")
    assert "--foundation (required in experiment and align modes):" in shown
    mode_help = shown.split("--mode: <experiment|align|demo>:", 1)[1].split("(default:", 1)[0]
    assert all(word in mode_help for word in ("experiment:", "align:", "demo:", "--prompts_file", "organism"))
    assert "python -m pretty_jax.run --flagfile=configs/demo.cfg" in shown  # an example command


def test_helpfull_lists_the_commands_flags_before_absls():
    result = _command("convert", "--helpfull")
    assert result.returncode == 0, result.stderr
    assert result.stdout.index("--out_dir") < result.stdout.index("absl's own flags:") < result.stdout.index(
        "--verbosity")


def test_a_missing_flagfile_is_one_error_line_with_one_prefix(tmp_path):
    result = _command("run", f"--flagfile={tmp_path / 'nope.cfg'}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: Unable to open flagfile: [Errno 2] No such file or directory: '{tmp_path / 'nope.cfg'}'"]
