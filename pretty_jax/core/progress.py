"""Progress of a long stage: a bar with rate and ETA on a terminal, one log line per
update elsewhere (CI logs, TPU VM job logs), so a person can watch either."""

from __future__ import annotations

import sys
import time

from absl import logging


class Progress:
    """Counts finished units of a stage of known size.

    On a terminal (stderr is a tty) it draws a tqdm bar; otherwise each `update` logs
    `<description>: done/total <unit>, rate <unit>/s, ETA s` once. Use as a context
    manager, or call `close()`.
    """

    def __init__(self, total: int, description: str, unit: str = "examples", initial: int = 0,
                 terminal: bool | None = None):
        self.total, self.description, self.unit = total, description, unit
        self.done, self._first = initial, initial
        self._start = time.perf_counter()
        self._bar = None
        if sys.stderr.isatty() if terminal is None else terminal:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=description, unit=f" {unit}",
                             dynamic_ncols=True, file=sys.stderr)

    def update(self, count: int = 1) -> None:
        """Marks `count` more units finished."""
        self.done += count
        if self._bar is not None:
            self._bar.update(count)
            return
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        rate = (self.done - self._first) / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        logging.info("%s: %d/%d %s, %.2f %s/s, ETA %.0fs", self.description, self.done, self.total,
                     self.unit, rate, self.unit, eta)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
