"""Every flagfile in configs/ passes its dry run where its models and data exist, and
fails it, naming what is missing and how to get it, where they do not; a training
config gives valid settings to the trainer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import in_process
import pytest
from test_chat import with_chat_template

ALL_CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.cfg"))
TRAIN_CONFIGS = [c for c in ALL_CONFIGS if "\n--train_file=" in "\n" + c.read_text()]
CONFIGS = [c for c in ALL_CONFIGS if c not in TRAIN_CONFIGS]
DEMO_CONFIGS = [c for c in CONFIGS if "\n--mode=demo\n" in "\n" + c.read_text()]
PAPER_CONFIGS = [c for c in CONFIGS if c not in DEMO_CONFIGS]
FLORES_CODES = ("eng", "zho_simpl", "deu", "fra", "jpn", "rus", "swh", "ace_Arab")
CONLLU = "1\tLe\tle\tDET\t_\t_\t2\tdet\t_\t_\n2\tchat\tchat\tNOUN\t_\t_\t0\troot\t_\t_\n\n"


def _fetched(root: Path, files: dict[str, str]) -> None:
    """A dataset folder of the data cache as the data command leaves it."""
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    (root / "fetched.json").write_text("{}", encoding="utf-8")


@pytest.fixture(scope="module")
def cache_with_data(tmp_path_factory) -> Path:
    """$XDG_CACHE_HOME holding every dataset the paper configs read, a few lines each."""
    cache = tmp_path_factory.mktemp("cache")
    data = cache / "pretty_jax" / "data"
    _fetched(data / "flores101", {f"flores101_dataset/devtest/{code}.devtest": "Hello world.\nGood morning.\n"
                                  for code in FLORES_CODES})
    _fetched(data / "muse", {f"en-{iso}.txt": "hello hallo\nworld welt\n" for iso in ("zh", "de", "fr", "ja", "ru")})
    _fetched(data / "ud", {f"{iso}-{split}.conllu": CONLLU for iso in ("fr", "de", "zh") for split in ("dev", "train")})
    article = json.dumps({"text": "The cat sleeps on the sofa all day.", "summary": "A cat sleeps."})
    _fetched(data / "crosssum", {f"eng-{code}.jsonl": article + "\n" for code in ("zho_simpl", "fra")})
    return cache


@pytest.fixture(scope="module")
def models(jax_checkpoint, jax_sft_stand_in, tmp_path_factory) -> list[str]:
    """--foundation and --sft flags of tiny models (the SFT model with Llama-2's chat
    template, which the chat config asks for)."""
    sft = with_chat_template(jax_sft_stand_in("llama"), tmp_path_factory.mktemp("chat") / "sft", "llama2")
    # The tiny models hold 256 positions: the lengths the configs give 7B models do not fit.
    return [f"--foundation={jax_checkpoint('llama')}", f"--sft={sft}", "--max_new_tokens=32", "--max_len=256"]


def _dry_run(config: Path, cache: Path, *flags: str) -> subprocess.CompletedProcess:
    return in_process.run(f"--flagfile={config}", "--dry_run", f"--output_dir={cache / 'out' / config.stem}", *flags,
                          env={"XDG_CACHE_HOME": str(cache)})


def test_there_are_configs():
    assert len(PAPER_CONFIGS) >= 4


@pytest.mark.parametrize("config", PAPER_CONFIGS, ids=lambda p: p.name)
def test_a_paper_config_without_its_data_fails_its_dry_run_saying_how_to_get_it(config, tmp_path):
    result = _dry_run(config, tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "is not in the data cache" in line and "fetch it with: python -m pretty_jax.data --datasets=" in line
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.parametrize("config", PAPER_CONFIGS, ids=lambda p: p.name)
def test_a_paper_config_with_its_models_and_data_passes_its_dry_run(config, cache_with_data, models):
    result = _dry_run(config, cache_with_data, *models)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "systems: foundation" in result.stdout and "stages:" in result.stdout
    assert "first prompt (" in result.stdout and "dry run passed" in result.stdout
    assert str(cache_with_data / "pretty_jax" / "data") in result.stdout  # the data: references, resolved
    assert not (cache_with_data / "out" / config.stem).exists()


@pytest.mark.slow
def test_the_chat_config_shows_the_sft_models_prompt_in_its_template(cache_with_data, models):
    config = next(c for c in CONFIGS if c.name == "flores_llama2_chat.cfg")
    result = _dry_run(config, cache_with_data, *models)
    assert result.returncode == 0, result.stderr[-2000:]
    sft_prompt = result.stdout.split("first prompt of the sft model", 1)[1]
    assert "[INST] <<SYS>>\nYou are a translator." in sft_prompt
    assert "Translate this sentence from English to Chinese: Good morning. [/INST]" in sft_prompt


@pytest.mark.parametrize("config", DEMO_CONFIGS, ids=lambda p: p.name)
def test_a_demo_config_passes_its_dry_run_before_the_organism_is_built(config, tmp_path):
    result = _dry_run(config, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "the model organism" in result.stdout and "not built in" in result.stdout
    assert "dry run passed" in result.stdout
    assert not (tmp_path / "pretty_jax").exists() and not (tmp_path / "out").exists()


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


@pytest.mark.slow
def test_the_spellings_before_the_renames_still_work_with_a_warning(cache_with_data, models):
    config = next(c for c in CONFIGS if c.name == "flores_bloom.cfg")
    result = _dry_run(config, cache_with_data, *models, "--num_prior_tokens=2", "--priors=none,sft")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "foundation + sft prior (2 tokens)" in result.stdout
    assert "--num_prior_tokens is deprecated: it is now --prior_token_count" in result.stderr


@pytest.mark.slow
def test_any_flores_language_is_accepted_and_an_unknown_one_refused_before_loading(cache_with_data, models):
    config = next(c for c in CONFIGS if c.name == "flores_bloom.cfg")
    result = _dry_run(config, cache_with_data, *models, "--target_lang=swh,ace_Arab", "--priors=none,sft")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "eng-swh" in result.stdout and "eng-ace_Arab" in result.stdout
    result = _dry_run(config, cache_with_data, *models, "--target_lang=swahili")
    assert result.returncode == 2 and "unknown language code 'swahili': did you mean" in result.stderr
