"""Every flagfile in configs/ is accepted by its command: the runner's (flags, languages,
priors, by --dry_run) and the trainer's (those naming a --train_file: the settings they
give are valid)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ALL_CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.cfg"))
TRAIN_CONFIGS = [c for c in ALL_CONFIGS if "\n--train_file=" in "\n" + c.read_text()]
CONFIGS = [c for c in ALL_CONFIGS if c not in TRAIN_CONFIGS]


def test_there_are_configs():
    assert len(CONFIGS) >= 4


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_config_dry_runs(config):
    result = subprocess.run(
        [sys.executable, "-m", "pretty_jax.run", f"--flagfile={config}", "--dry_run"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "systems: foundation" in result.stdout and "stages:" in result.stdout


@pytest.mark.parametrize("config", TRAIN_CONFIGS, ids=lambda p: p.name)
def test_train_config_gives_valid_settings(config):
    check = (
        "import sys; from absl import flags; from pretty_jax.cli import train_flags; "
        "flags.FLAGS(['train', '--flagfile=' + sys.argv[1]]); "
        "s = train_flags.settings_from_flags(); s.validate(); print(s.data_mode, s.init)"
    )
    result = subprocess.run([sys.executable, "-c", check, str(config)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("sft ")


def test_the_spellings_before_the_renames_still_work_with_a_warning():
    result = subprocess.run(
        [sys.executable, "-m", "pretty_jax.run", f"--flagfile={CONFIGS[0]}", "--dry_run", "--num_prior_tokens=2",
         "--priors=none,sft"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "foundation + sft prior (2 tokens)" in result.stdout
    assert "--num_prior_tokens is deprecated: it is now --prior_token_count" in result.stderr


def test_any_flores_language_is_accepted_and_an_unknown_one_refused_before_loading():
    config = next(c for c in CONFIGS if c.name == "flores_bloom.cfg")
    command = [sys.executable, "-m", "pretty_jax.run", f"--flagfile={config}", "--dry_run"]
    result = subprocess.run(command + ["--target_lang=swh,ace_Arab"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "eng-swh" in result.stdout and "eng-ace_Arab" in result.stdout
    result = subprocess.run(command + ["--target_lang=swahili"], capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "unknown language code 'swahili'" in result.stderr
