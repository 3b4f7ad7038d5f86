"""What every command-line entry point shares: absl start-up, and bad input reported as
one clear line rather than a traceback.

Exit status: 0 success, 2 any error the user can fix (a flag's value or range, a file,
a checkpoint, an output directory in use), 130 interrupted (Ctrl-C: one line, no
traceback; every output is written atomically or appended by whole records, and the
kernel releases the directory's lock, so the same command resumes), 1 a bug (a
traceback) or, for `parity`, a failed comparison."""

from __future__ import annotations

import logging
import re
import sys
from typing import Callable

from absl import app, flags

from pretty_jax.cli import help as cli_help
from pretty_jax.core import host_memory
from pretty_jax.core.errors import UserError
from pretty_jax.core.flag_names import flag_name

INTERRUPTED = 130  # the shell's status for a command ended by SIGINT


def parse_flags(argv: list[str], spec: cli_help.Help) -> list[str]:
    """absl's flag parsing, with a bad flag reported like every other user error, and
    `--help` / `--helpfull` answered with the command's own flags (exit 0)."""
    wanted = cli_help.requested_help(argv)
    if wanted is not None:
        print(cli_help.short_help(spec) if wanted == "short" else cli_help.full_help(spec))
        sys.exit(0)
    try:
        return flags.FLAGS(argv)
    except flags.CantOpenFlagFileError as e:
        print(f"error: {_without_absl_prefix(str(e))}", file=sys.stderr)
    except flags.Error as e:
        print(f"error: {_without_absl_prefix(str(e))}\n(--help lists the flags)", file=sys.stderr)
    sys.exit(2)


def _without_absl_prefix(message: str) -> str:
    """absl's message without its own "ERROR::" (we print one "error:")."""
    return re.sub(r"^ERROR::?\s*", "", message)


def flag_message(message: str) -> str:
    """A library error as the CLI user reads it: a leading setting name (`limit=0 ...`,
    `sft is required ...`) becomes its flag (`--limit=0 ...`), and so does a setting
    the message suggests later, written `name=value` after a space (`priors=none,oracle`)."""
    if not message.startswith("--"):
        match = re.match(r"([a-z][a-z0-9_]*)(?=[= :])", message)
        if match:
            name = flag_name(match.group(1))
            if name in flags.FLAGS:
                message = f"--{name}" + message[match.end():]

    def as_flag(match: re.Match) -> str:
        name = flag_name(match.group(2))
        return f"{match.group(1)}--{name}=" if name in flags.FLAGS else match.group(0)

    return re.sub(r"(\s)([a-z][a-z0-9_]*)=", as_flag, message)


def _printable_streams() -> None:
    """Lets stdout and stderr print what their encoding cannot hold (Chinese outputs on a
    latin-1 terminal) as escapes like \\u4e2d, instead of failing after the run wrote
    its outputs."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):  # not where a caller replaced it (e.g. a StringIO)
            stream.reconfigure(errors="backslashreplace")


def run(main: Callable[[list[str]], None], spec: cli_help.Help | None = None) -> None:
    """`absl.app.run(main)`, printing user errors and missing files as `error: ...`;
    `spec` is what `--help` shows (default: the `__main__` module's docstring). On the CPU,
    glibc's allocator is first set up for XLA's per-step buffers (`core.host_memory`)."""
    host_memory.set_up_for_cpu()
    _printable_streams()
    if spec is None:
        spec = cli_help.fallback(sys.modules["__main__"].__doc__, f"python {sys.argv[0]}")
    app.run(lambda argv: run_main(main, argv), flags_parser=lambda argv: parse_flags(argv, spec))


def run_main(main: Callable[[list[str]], None], argv: list[str]) -> None:
    """`main(argv)` once the flags are parsed, with this module's exit statuses: a user
    error or a missing file is one `error: ...` line and exit 2, Ctrl-C one line and 130."""
    # JAX logs, at INFO, every accelerator backend it does not find.
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}", exitcode=2)
    try:
        main(argv)
    except (UserError, OSError) as e:
        print(f"error: {flag_message(str(e))}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        sys.exit(INTERRUPTED)
