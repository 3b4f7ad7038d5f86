"""Progress a person can watch: a tqdm bar with rate and ETA on a terminal, one log
line per update elsewhere; training, conversion and export report through it."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from conftest import write_scratch_inputs
from safetensors.numpy import load_file

from pretty_jax.core.progress import Progress
from pretty_jax.training import TrainSettings, train

ROOT = Path(__file__).resolve().parents[1]
# A stage of 5 steps, 50 ms each, as a user's command would run it (stderr decides).
STAGE = """
import time
from pretty_jax.core.progress import Progress
with Progress(5, "pretrain", unit="steps") as progress:
    for step in range(5):
        time.sleep(0.05)
        progress.update(loss=3.0 - step / 2)
"""


def _on_a_terminal(code: str) -> str:
    """What `python -c code` writes to its stderr when that is a terminal (a pty)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # 24 rows, 120 columns
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=follower)
    os.close(follower)
    output = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        try:
            chunk = os.read(leader, 4096) if ready else b""
        except OSError:  # the child closed the terminal
            chunk = b""
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert child.wait(timeout=60) == 0, output.decode(errors="replace")
    return output.decode(errors="replace")


def test_a_terminal_shows_a_bar_with_rate_eta_and_loss():
    shown = _on_a_terminal(STAGE)
    final = shown.replace("\r", "\n").splitlines()
    bar = [line for line in final if line.startswith("pretrain: 100%")]
    assert bar, shown
    # tqdm's [elapsed<remaining, rate] and the postfix
    assert re.search(r"\| 5/5 \[\d\d:\d\d<\d\d:\d\d, +\d+\.\d+ steps/s, loss=1\]", bar[-1]), bar[-1]
    assert re.search(r"pretrain:  (20|40|60|80)%.*\d/5 \[", shown), "no bar before the end"
    assert "ETA" not in shown  # no log lines on a terminal


def test_off_a_terminal_each_update_is_one_log_line():
    # the library logs through the standard `logging` module: a program shows its INFO lines
    # (absl's app.run, which every pretty_jax command runs under, or basicConfig as here)
    result = subprocess.run([sys.executable, "-c", "import logging; logging.basicConfig(level=logging.INFO)\n"
                             + STAGE], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "pretrain: " in line]
    assert len(lines) == 5, result.stderr
    assert all(re.search(rf"pretrain: {i + 1}/5 steps, \d+\.\d\d steps/s, ETA \d+s, loss {3.0 - i / 2:g}$", line)
               for i, line in enumerate(lines)), lines
    assert lines[-1].endswith("5/5 steps, " + lines[-1].split(", ")[1] + ", ETA 0s, loss 1")
    assert "\r" not in result.stderr and "%|" not in result.stderr  # no bar in a log


def test_log_interval_keeps_the_last_line(caplog):
    caplog.set_level(logging.INFO)
    with Progress(40, "read checkpoint x", unit="tensors", terminal=False, log_interval=3600) as progress:
        for _ in range(40):
            progress.update()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("read checkpoint x")]
    assert len(lines) == 1 and lines[0].startswith("read checkpoint x: 40/40 tensors,"), lines


def test_the_rate_counts_from_where_a_resumed_stage_started(caplog, monkeypatch):
    clock = iter([100.0, 102.0])
    monkeypatch.setattr("pretty_jax.core.progress.time.perf_counter", lambda: next(clock))
    caplog.set_level(logging.INFO)
    Progress(10, "train", unit="steps", initial=6, terminal=False).update(2)
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("train:")]
    assert line == "train: 8/10 steps, 1.00 steps/s, ETA 2s"  # 2 steps in 2 s, 2 left


def test_convert_logs_its_progress(jax_checkpoint, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pretty_jax.convert", f"--hf_dir={jax_checkpoint('llama')}",
         f"--out_dir={tmp_path / 'out'}"], capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    tensors = len(load_file(tmp_path / "out" / "pretty_jax_params.safetensors"))
    pattern = rf"read checkpoint {re.escape(str(jax_checkpoint('llama')))}: {tensors}/{tensors} tensors, .* tensors/s, ETA 0s"
    assert re.search(pattern, result.stderr), result.stderr[-3000:]


@pytest.mark.slow
def test_training_logs_steps_loss_and_eta_every_log_every(tmp_path, caplog):
    write_scratch_inputs(tmp_path)
    settings = TrainSettings(
        output_dir=str(tmp_path / "run"), init="scratch", model_config=str(tmp_path / "config.json"),
        tokenizer=str(tmp_path / "tokenizer"), train_file=str(tmp_path / "corpus.txt"), max_seq_len=32,
        batch_size=2, train_steps=4, warmup_steps=1, log_every=2, save_every=4, eval_every=10**9,
    )
    caplog.set_level(logging.INFO)
    train(settings, description="pretrain tiny")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("pretrain tiny:")]
    losses = [json.loads(line)["loss"] for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert [line.split(",")[0] for line in lines] == ["pretrain tiny: 2/4 steps", "pretrain tiny: 4/4 steps"], lines
    assert lines[-1].split(", ")[2] == "ETA 0s" and f"loss {losses[-1]:.4g}" in lines[-1], lines
    assert "export float32 tensors:" in caplog.text  # the HF export at the end reports too


@pytest.mark.parametrize("terminal", [True, False])
def test_values_never_change_the_count(terminal, capsys):
    with Progress(3, "x", unit="steps", terminal=terminal) as progress:
        progress.update(2, loss=1.5)
    assert progress.done == 2
