"""Many runs of one `python -m pretty_jax.<command>` in one process, for the tests of a
command that cannot run in the test process (its flags clash with run's: each command
defines its own `--dtype`).

`CommandServer("pretty_jax.parity").run(*args)` returns what `subprocess.run([sys.executable, "-m",
"pretty_jax.parity", *args], capture_output=True, text=True)` would; the server process
runs each command line as tests/in_process.py does (the command's own flag parsing, exit
statuses and one-line errors, stdout and stderr captured), so JAX, transformers and torch
are imported once per server instead of once per run.

Protocol: one JSON request per line on the server's stdin ({"args": [...], "env": {...}});
one answer per request on its stdout, a line starting with `ANSWER` and then
{"returncode", "stdout", "stderr"}.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ANSWER = "command-server-answer "


class CommandServer:
    """A server process for `python -m <entry>` (e.g. "pretty_jax.parity"), started on the
    first run."""

    def __init__(self, entry: str):
        self.entry = entry
        self._process: subprocess.Popen | None = None
        self._log = tempfile.TemporaryFile(mode="w+")  # the server's own stderr, shown if it dies

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        if self._process is None:
            self._process = subprocess.Popen(
                [sys.executable, str(Path(__file__)), self.entry], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=self._log, text=True, cwd=Path(__file__).resolve().parents[1],
            )
        self._process.stdin.write(json.dumps({"args": list(args), "env": env or {}}) + "\n")
        self._process.stdin.flush()
        for line in self._process.stdout:
            if line.startswith(ANSWER):
                answer = json.loads(line[len(ANSWER):])
                return subprocess.CompletedProcess([self.entry, *args], **answer)
        self._log.seek(0)
        raise RuntimeError(f"the {self.entry} server ended: {self._log.read()[-3000:]}")

    def close(self) -> None:
        if self._process is not None:
            self._process.stdin.close()
            self._process.wait(timeout=60)
        self._log.close()


def fixture(entry: str):
    """A module-scoped pytest fixture of `python -m <entry>`: the test gets `run(*args)`
    (`CommandServer.run` of one server for the whole module)."""

    @pytest.fixture(scope="module")
    def serve_module():
        server = CommandServer(entry)
        yield server.run
        server.close()

    return serve_module


def _serve(entry: str) -> None:
    """Runs each request with the entry module's command (`pretty_jax/parity.py`'s `command`
    and its `HELP`), as `common.run` would."""
    sys.path.insert(0, str(Path(__file__).parent))
    import in_process

    from pretty_jax.core import host_memory

    host_memory.set_up_for_cpu()  # as common.run does for the command's own process
    command = importlib.import_module(entry).command
    answers = sys.stdout
    for line in sys.stdin:
        request = json.loads(line)
        result = in_process.run_command(entry, command.main, command.HELP, request["args"], request["env"])
        answer = {"returncode": result.returncode, "stdout": result.stdout, "stderr": result.stderr}
        answers.write(ANSWER + json.dumps(answer) + "\n")
        answers.flush()


if __name__ == "__main__":
    _serve(sys.argv[1])
