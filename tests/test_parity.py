"""The parity checker, run as a user runs it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from pretty_jax import checkpoint


def _parity(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pretty_jax.parity", *args], capture_output=True, text=True
    )


@pytest.mark.parametrize("preset", ["llama3", "gemma3"])
def test_parity_ok_on_a_tiny_checkpoint(tiny_checkpoint, preset):
    result = _parity(f"--hf_dir={tiny_checkpoint(preset)}")
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("parity OK max_abs=") and last.endswith("top1=1.000")
    assert "with KV cache:" in result.stdout


def test_generate_parity_ok_past_the_sliding_window(tiny_checkpoint):
    """Gemma 3's window is 8 tokens: prompts and 24 new tokens run well past it."""
    directory = tiny_checkpoint("gemma3")
    assert checkpoint.load_config(directory).layer_windows == (8, 8, None) * 2
    result = _parity(f"--hf_dir={directory}", "--generate", "--max_new_tokens=24")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "generate parity OK identical=9/9"


def test_parity_fails_on_a_corrupted_conversion(tiny_checkpoint, tmp_path):
    """A converted checkpoint with one tensor nudged must be caught."""
    hf_dir = tiny_checkpoint("bloom")
    checkpoint.convert_checkpoint(hf_dir, tmp_path / "converted", "float32")
    params_file = tmp_path / "converted" / checkpoint.PARAMS_FILE
    tensors = load_file(params_file)
    bias = tensors["layers.1.mlp.down_bias"]
    # Not a uniform shift: the final LayerNorm would remove that.
    tensors["layers.1.mlp.down_bias"] = bias + np.linspace(-0.05, 0.05, bias.size, dtype=np.float32)
    save_file(tensors, params_file, metadata={"format": checkpoint.FORMAT, "dtype": "float32"})
    result = _parity(f"--hf_dir={hf_dir}", f"--ours={tmp_path / 'converted'}")
    assert result.returncode == 1, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("parity FAIL max_abs=")


def test_parity_reports_a_non_utf8_prompt_file_by_line(tiny_checkpoint, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_bytes("first prompt\nsecond \xe9t\xe9\n".encode("latin-1"))
    result = _parity(f"--hf_dir={tiny_checkpoint('llama')}", f"--prompts={prompts}")
    assert result.returncode == 2
    assert f"{prompts}:2: not valid UTF-8" in result.stderr
    assert "Traceback" not in result.stderr


def test_generate_parity_cli_compares_beam_search_tokens(tiny_checkpoint):
    result = _parity(f"--hf_dir={tiny_checkpoint('bloom')}", "--generate", "--max_new_tokens=12", "--num_beams=4")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "generate parity OK identical=9/9"
