"""Device-parallel and multi-process decoding give exactly the single-device tokens."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from generation_cases import run_cases

from pretty_jax.checkpoints import loading
from pretty_jax.checkpoints.tokenizer import load_tokenizer
from pretty_jax.engine.generator import Generator

WORKER = Path(__file__).parent / "mesh_worker.py"


def _single_device_run(directory):
    tokenizer = load_tokenizer(directory)
    generator = Generator(loading.load_model(directory, "float32"), tokenizer, batch_size=4)
    return directory, run_cases(generator, tokenizer)


@pytest.fixture(scope="module")
def single_device(jax_checkpoint):
    return _single_device_run(jax_checkpoint("llama"))


def _worker(*flags: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(WORKER), *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _result(process: subprocess.Popen) -> dict:
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    return json.loads(stdout.strip().splitlines()[-1])


# One process of 4 devices runs every single-process mesh below (its start-up, imports
# and model loading paid once): (model, mesh shape) -> that run's result.
MESHES = (("llama", "4x1"), ("llama", "2x2"), ("gemma3", "2x2"))


@pytest.fixture(scope="module")
def four_devices(jax_checkpoint):
    runs = [f"--run={shape}:{jax_checkpoint(model)}" for model, shape in MESHES]
    return dict(zip(MESHES, _result(_worker("--devices=4", *runs))["runs"]))


@pytest.mark.parametrize("data,model", [(4, 1), (2, 2)])
def test_four_devices_give_single_device_tokens(single_device, four_devices, data, model):
    _, expected = single_device
    result = four_devices["llama", f"{data}x{model}"]
    assert result["mesh"] == {"data": data, "model": model}
    assert result["outputs"] == expected


def test_gemma3_heads_split_on_model_axis_give_single_device_tokens(jax_checkpoint, four_devices):
    """Gemma 3's single key/value head cannot be split over model=2: it is replicated
    while the query heads and MLP are split, and the tokens stay the same."""
    _, expected = _single_device_run(jax_checkpoint("gemma3"))
    result = four_devices["gemma3", "2x2"]
    assert result["mesh"] == {"data": 2, "model": 2}
    assert result["outputs"] == expected


def test_two_processes_give_single_process_tokens(single_device):
    directory, expected = single_device
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    workers = [
        _worker(
            f"--run=4x1:{directory}", "--devices=2", f"--coordinator_address=127.0.0.1:{port}",
            "--num_processes=2", f"--process_id={i}",
        )
        for i in range(2)
    ]
    results = [_result(w) for w in workers]
    assert sorted(r["process"] for r in results) == [0, 1]
    for result in results:
        assert result["runs"][0]["mesh"] == {"data": 4, "model": 1}
        assert result["runs"][0]["outputs"] == expected
