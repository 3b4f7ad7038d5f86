"""Progress of a long stage: a bar with rate and ETA on a terminal, one log line per
update elsewhere (CI logs, TPU VM job logs), so a person can watch either."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger(__name__)


class Progress:
    """Counts finished units of a stage of known size.

    On a terminal (stderr is a tty) it draws a tqdm bar; otherwise each `update` logs
    `<description>: done/total <unit>, rate <unit>/s, ETA s[, name value ...]` once.
    Use as a context manager, or call `close()`.

    log_interval: in the log, at most one line per this many seconds (and always the
      line of the last unit), for stages of many quick units (the tensors of a
      checkpoint); 0 logs every update.
    """

    def __init__(self, total: int, description: str, unit: str = "examples", initial: int = 0,
                 terminal: bool | None = None, log_interval: float = 0.0):
        self.total, self.description, self.unit = total, description, unit
        self.done, self._first = initial, initial
        self._start = self._logged = time.perf_counter()
        self._log_interval = log_interval
        self._bar = None
        if sys.stderr.isatty() if terminal is None else terminal:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=description, unit=f" {unit}",
                             dynamic_ncols=True, file=sys.stderr)

    def update(self, count: int = 1, **values: float) -> None:
        """Marks `count` more units finished; `values` (e.g. loss=2.31) are shown after
        the bar, or at the end of the log line."""
        self.done += count
        if self._bar is not None:
            if values:
                self._bar.set_postfix({k: f"{v:.4g}" for k, v in values.items()}, refresh=False)
            self._bar.update(count)
            return
        now = time.perf_counter()
        if now - self._logged < self._log_interval and self.done < self.total:
            return
        self._logged = now
        rate = (self.done - self._first) / max(now - self._start, 1e-9)
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        shown = "".join(f", {k} {v:.4g}" for k, v in values.items())
        log.info("%s: %d/%d %s, %.2f %s/s, ETA %.0fs%s", self.description, self.done, self.total,
                     self.unit, rate, self.unit, eta, shown)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
