"""`python -m pretty_jax.run ARGS` inside the test process, for the tests whose point
is what a run writes, prints or refuses rather than what a process does.

A subprocess pays ~10 s before its first step here (JAX, transformers and torch
imported, every program loaded again); in process the command's flags are parsed
and its main runs as `python -m pretty_jax.run` runs them (`common.parse_flags`,
`common.run_main`: the same exit statuses and one-line errors), its stdout and stderr
(prints and absl's log lines) captured. What only a process shows — a kill, Ctrl-C,
a lock held by another process, start-up itself — stays with subprocess tests.

`run_command` runs any command's main so; a command whose flags clash with run's (each
command defines its own `--dtype`) runs in a process of its own, many runs to one
process (tests/command_server.py)."""

from __future__ import annotations

import contextlib
import io
import logging as std_logging
import os
import subprocess
import sys
from typing import Callable, Sequence

import jax
from absl import app, flags, logging

from pretty_jax.cli import common
from pretty_jax.cli.help import Help


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Runs `python -m pretty_jax.run` with `args` (and `env` added to the environment);
    returns what `subprocess.run(..., capture_output=True, text=True)` would."""
    from pretty_jax.cli import run as command, run_flags

    return run_command("pretty_jax.run", command.main, run_flags.HELP, args, env)


def run_command(program: str, main: Callable[[list[str]], None], spec: Help, args: Sequence[str],
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Runs the command `program` (its `main`, its `--help` `spec`) with `args`, and `env`
    added to the environment, as `run` does."""
    stdout, stderr = io.StringIO(), io.StringIO()
    handler = logging.get_absl_handler()
    saved_stream, saved_filters = handler.python_handler.stream, list(handler.filters)
    root = std_logging.getLogger()
    saved_root = root.level, list(root.handlers)
    saved_env = {name: os.environ.get(name) for name in env or {}}
    saved_cache = jax.config.jax_compilation_cache_dir  # a run with another XDG_CACHE_HOME moves it
    os.environ.update(env or {})
    logging.use_absl_handler()
    handler.python_handler.stream = stderr
    flags.FLAGS.unparse_flags()
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            returncode = _exit_status(lambda: common.run_main(main, _parse([program, *args], spec)))
    finally:
        flags.FLAGS.unparse_flags()
        handler.python_handler.stream, handler.filters = saved_stream, saved_filters
        jax.config.update("jax_compilation_cache_dir", saved_cache)
        root.setLevel(saved_root[0])
        root.handlers[:] = saved_root[1]
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return subprocess.CompletedProcess([program, *args], returncode, stdout.getvalue(), stderr.getvalue())


def _parse(argv: list[str], spec: Help) -> list[str]:
    """The command's flag parsing, and absl.app.run's INFO verbosity unless --verbosity."""
    argv = common.parse_flags(argv, spec)
    if flags.FLAGS["verbosity"].using_default_value:
        flags.FLAGS.verbosity = 0
    return argv


def _exit_status(main) -> int:
    """The status a process running `main` would exit with (absl prints a usage error)."""
    try:
        main()
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except app.UsageError as e:  # absl.app.run prints it with the usage
        print(e, file=sys.stderr)
        return e.exitcode
    return 0
