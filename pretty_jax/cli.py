"""What every command-line entry point shares: absl start-up, and bad input reported as
one clear line (exit status 2) rather than a traceback."""

from __future__ import annotations

import logging
import sys
from typing import Callable

from absl import app

from pretty_jax.errors import UserError


def run(main: Callable[[list[str]], None]) -> None:
    """`absl.app.run(main)`, printing user errors and missing files as `error: ...`."""

    def guarded(argv: list[str]) -> None:
        # JAX logs, at INFO, every accelerator backend it does not find.
        logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
        try:
            main(argv)
        except (UserError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)

    app.run(guarded)
