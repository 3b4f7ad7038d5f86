"""The command-line entry points' allocator set-up for XLA:CPU (core/host_memory.py):
a program with a large scratch buffer stops faulting its pages in at every run, and
nothing is changed where JAX will not run on the CPU or the user chose an allocator."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pretty_jax.core import host_memory

# The gradient of a 12-layer network, a training step's shape: ~60 MB of scratch for the
# activations the backward pass reads. Prints whether the set-up applied and the fewest
# minor page faults of five runs after three (another process's load adds some to a few).
PROGRAM = """
import json, resource
from pretty_jax.core import host_memory
applied = host_memory.set_up_for_cpu()
import jax, jax.numpy as jnp

def loss(ws, x):
    for w in ws:
        x = jnp.tanh(x @ w)
    return jnp.sum(jax.nn.log_softmax(x @ ws[0].T, axis=-1))

step = jax.jit(jax.grad(loss))
x, ws = jnp.full((4096, 256), 0.01), [jnp.full((256, 256), 0.01)] * 12
for _ in range(3):
    jax.block_until_ready(step(ws, x))
faults = []
for _ in range(5):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    jax.block_until_ready(step(ws, x))
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"applied": applied, "faults": min(faults)}))
"""


def _run(**env: str) -> dict:
    environment = {k: v for k, v in os.environ.items() if k not in ("JAX_PLATFORMS", "LD_PRELOAD", "GLIBC_TUNABLES")}
    environment = {k: v for k, v in environment.items() if not k.startswith("MALLOC_")}
    result = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, env={**environment, **env})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(sys.platform != "linux" or not host_memory.runs_on_cpu(), reason="glibc on a CPU-only JAX")
def test_a_large_scratch_buffer_is_reused_instead_of_faulted_in_at_every_run():
    tuned, untouched = _run(), _run(MALLOC_ARENA_MAX="8")  # a user's own setting: left alone
    assert tuned["applied"] and not untouched["applied"]
    assert untouched["faults"] > 10_000  # the scratch buffer's 4 KiB pages, every run
    assert tuned["faults"] < untouched["faults"] / 20


@pytest.mark.parametrize("platforms, cpu", [("cpu", True), ("cpu,cuda", True), ("cuda", False), ("tpu,cpu", False)])
def test_jax_platforms_decides_where_jax_runs(monkeypatch, platforms, cpu):
    monkeypatch.setenv("JAX_PLATFORMS", platforms)
    assert host_memory.runs_on_cpu() is cpu


@pytest.mark.parametrize("plugin", [True, False])
def test_without_jax_platforms_an_installed_accelerator_plugin_means_not_the_cpu(monkeypatch, plugin):
    monkeypatch.delenv("JAX_PLATFORMS", raising=False)
    monkeypatch.setattr(host_memory, "_accelerator_plugin_installed", lambda: plugin)
    assert host_memory.runs_on_cpu() is not plugin


@pytest.mark.parametrize("variable", ["LD_PRELOAD", "GLIBC_TUNABLES", "MALLOC_TRIM_THRESHOLD_"])
def test_a_users_allocator_choice_is_left_alone(monkeypatch, variable):
    monkeypatch.setenv(variable, "x")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    assert host_memory.set_up_for_cpu() is False


def test_an_accelerator_run_is_left_alone(monkeypatch):
    monkeypatch.setenv("JAX_PLATFORMS", "cuda")
    assert host_memory.set_up_for_cpu() is False
