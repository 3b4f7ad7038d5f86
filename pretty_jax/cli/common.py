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

from pretty_jax.core.errors import UserError
from pretty_jax.core.flag_names import flag_name

INTERRUPTED = 130  # the shell's status for a command ended by SIGINT


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with a bad flag reported like every other user error."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        print(f"error: {e}\n(pass --helpfull to see every flag)", file=sys.stderr)
        sys.exit(2)




def flag_message(message: str) -> str:
    """A library error as the CLI user reads it: a leading setting name (`limit=0 ...`,
    `sft is required ...`) becomes its flag (`--limit=0 ...`)."""
    if message.startswith("--"):
        return message
    match = re.match(r"([a-z][a-z0-9_]*)(?=[= :])", message)
    if match:
        name = flag_name(match.group(1))
        if name in flags.FLAGS:
            return f"--{name}" + message[match.end():]
    return message


def _printable_streams() -> None:
    """Lets stdout and stderr print what their encoding cannot hold (Chinese outputs on a
    latin-1 terminal) as escapes like \\u4e2d, instead of failing after the run wrote
    its outputs."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):  # not where a caller replaced it (e.g. a StringIO)
            stream.reconfigure(errors="backslashreplace")


def run(main: Callable[[list[str]], None]) -> None:
    """`absl.app.run(main)`, printing user errors and missing files as `error: ...`."""
    _printable_streams()

    def guarded(argv: list[str]) -> None:
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

    app.run(guarded, flags_parser=_parse_flags)
