"""The parity checker, run as a user runs it (one process serving every run of the
module: tests/command_server.py)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import command_server
from safetensors.numpy import load_file, save_file

from pretty_jax.checkpoints import loading, parity


parity_cli = command_server.fixture("pretty_jax.parity")  # one process serving the module's runs


@pytest.mark.parametrize("preset", ["llama3", "gemma3"])
def test_parity_ok_on_a_tiny_checkpoint(parity_cli, tiny_checkpoint, preset):
    result = parity_cli(f"--hf_dir={tiny_checkpoint(preset)}")
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("parity OK max_abs=") and " rel=" in last and last.endswith("top1=1.000")
    assert "with KV cache:" in result.stdout
    assert "tolerances rel<=0.0002 kl<=1e-06 top1>=0.99" in result.stdout.splitlines()[0]


def test_bfloat16_parity_passes_on_its_default_tolerances(parity_cli, tiny_checkpoint):
    result = parity_cli(f"--hf_dir={tiny_checkpoint('llama')}", "--dtype=bfloat16")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("parity OK max_abs=")


def test_generate_parity_ok_past_the_sliding_window(parity_cli, tiny_checkpoint):
    """Gemma 3's window is 8 tokens: prompts and 24 new tokens run well past it."""
    directory = tiny_checkpoint("gemma3")
    assert loading.load_config(directory).layer_windows == (8, 8, None) * 2
    result = parity_cli(f"--hf_dir={directory}", "--generate", "--max_new_tokens=24")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "generate parity OK identical=9/9"


def test_parity_of_a_bfloat16_conversion_uses_its_dtype_and_bfloat16_tolerances(parity_cli, tiny_checkpoint, tmp_path):
    hf_dir = tiny_checkpoint("llama")
    loading.convert_checkpoint(hf_dir, tmp_path / "converted", "bfloat16")  # convert's default dtype
    result = parity_cli(f"--hf_dir={hf_dir}", f"--ours={tmp_path / 'converted'}")
    assert result.returncode == 0, result.stdout + result.stderr
    header = result.stdout.splitlines()[0]
    assert "bfloat16 (as --ours is stored)" in header and "tolerances rel<=0.15 kl<=0.01 top1>=0.9" in header


def test_parity_fails_on_a_corrupted_conversion(parity_cli, tiny_checkpoint, tmp_path):
    """A converted checkpoint with one tensor nudged must be caught."""
    hf_dir = tiny_checkpoint("bloom")
    loading.convert_checkpoint(hf_dir, tmp_path / "converted", "float32")
    params_file = tmp_path / "converted" / loading.PARAMS_FILE
    tensors = load_file(params_file)
    bias = tensors["layers.1.mlp.down_bias"]
    # Not a uniform shift: the final LayerNorm would remove that.
    tensors["layers.1.mlp.down_bias"] = bias + np.linspace(-0.05, 0.05, bias.size, dtype=np.float32)
    save_file(tensors, params_file, metadata={"format": loading.FORMAT, "dtype": "float32"})
    result = parity_cli(f"--hf_dir={hf_dir}", f"--ours={tmp_path / 'converted'}")
    assert result.returncode == 1, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("parity FAIL max_abs=")


def _defective_copy(source, destination, edit_tensors=None, edit_config=None):
    """A copy of the checkpoint `source` with its tensors and/or config edited."""
    shutil.copytree(source, destination)
    if edit_tensors is not None:
        tensors = load_file(destination / "model.safetensors")
        edit_tensors(tensors)
        save_file(tensors, destination / "model.safetensors", metadata={"format": "pt"})
    if edit_config is not None:
        config = json.loads((destination / "config.json").read_text())
        edit_config(config)
        (destination / "config.json").write_text(json.dumps(config))
    return destination


def _swap_query_projections_of_layers_0_and_1(tensors):
    first, second = (f"model.layers.{i}.self_attn.q_proj.weight" for i in (0, 1))
    tensors[first], tensors[second] = tensors[second], tensors[first]


def _rope_base_five_percent_high(config):
    config["rope_parameters"]["rope_theta"] *= 1.05


@pytest.mark.parametrize(
    "defect",
    [
        dict(edit_tensors=_swap_query_projections_of_layers_0_and_1),
        dict(edit_config=_rope_base_five_percent_high),
    ],
    ids=["swapped-q_proj", "wrong-rope-base"],
)
def test_parity_fails_on_a_real_defect(parity_cli, tiny_checkpoint, tmp_path, defect):
    hf_dir = tiny_checkpoint("llama")
    ours = _defective_copy(hf_dir, tmp_path / "ours", **defect)
    result = parity_cli(f"--hf_dir={hf_dir}", f"--ours={ours}")
    assert result.returncode == 1, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("parity FAIL max_abs=") and "(rel=" in last


def _logits_with_error(scale: float, error: float) -> tuple[np.ndarray, np.ndarray]:
    """Reference logits [8, 500] of magnitude ~`scale`, and a copy off by +-`error`."""
    rng = np.random.default_rng(0)
    reference = scale * rng.standard_normal((8, 500))
    return reference, reference + error * np.sign(rng.standard_normal(reference.shape))


def test_large_logits_with_a_small_relative_error_pass():
    """At logits ~30, as in real models, float32 rounding of 2e-3 is 1e-5 relative."""
    agreement = parity.Agreement.of(*_logits_with_error(scale=30.0, error=2e-3))
    assert agreement.max_abs == pytest.approx(2e-3)
    assert agreement.max_rel < 5e-5
    assert parity.DEFAULT_TOLERANCES["float32"].failures(agreement) == []


def test_the_same_absolute_error_on_small_logits_fails():
    """At logits below 1 the bound is absolute: the same 2e-3 is a defect there."""
    agreement = parity.Agreement.of(*_logits_with_error(scale=0.3, error=2e-3))
    assert agreement.max_rel == pytest.approx(2e-3)
    broken = parity.DEFAULT_TOLERANCES["float32"].failures(agreement)
    assert broken and broken[0].startswith("rel=0.002>")


def test_relative_error_is_judged_per_position():
    """One large-logit position does not excuse an error where the logits are small."""
    reference, ours = _logits_with_error(scale=0.3, error=0.0)
    reference[0] *= 1000.0
    ours[0] = reference[0]
    ours[1] += 2e-3
    agreement = parity.Agreement.of(reference, ours)
    assert agreement.max_rel == pytest.approx(2e-3)


def test_parity_reports_a_non_utf8_prompt_file_by_line(parity_cli, tiny_checkpoint, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_bytes("first prompt\nsecond \xe9t\xe9\n".encode("latin-1"))
    result = parity_cli(f"--hf_dir={tiny_checkpoint('llama')}", f"--prompts={prompts}")
    assert result.returncode == 2
    assert f"{prompts}:2: not valid UTF-8" in result.stderr
    assert "Traceback" not in result.stderr


def test_generate_parity_cli_compares_beam_search_tokens(parity_cli, tiny_checkpoint):
    result = parity_cli(f"--hf_dir={tiny_checkpoint('bloom')}", "--generate", "--max_new_tokens=12", "--num_beams=4")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "generate parity OK identical=9/9"


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--hf_dir=/no/such/dir"], "error: --hf_dir=/no/such/dir does not exist"),
        (["--gguf=/no/such/model.gguf"], "error: --gguf=/no/such/model.gguf does not exist"),
        (["--hf_dir={hf_dir}", "--ours=/no/such/dir"], "error: --ours=/no/such/dir does not exist"),
        (["--hf_dir={empty}"], "error: --hf_dir={empty} has no config.json"),
    ],
    ids=["hf_dir", "gguf", "ours", "no-config"],
)
def test_parity_names_the_flag_of_a_path_that_is_not_a_model(parity_cli, tiny_checkpoint, tmp_path, flags, message):
    (tmp_path / "empty").mkdir()
    paths = dict(hf_dir=tiny_checkpoint("llama"), empty=tmp_path / "empty")
    result = parity_cli(*(flag.format(**paths) for flag in flags))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(message.format(**paths)), result.stderr
