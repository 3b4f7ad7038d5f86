"""Which waiting examples a continuous-batching pool admits next, and in what shapes.

Examples are taken in prompt-length order within a window of the oldest waiting ones
(so a refill group's prompts have similar lengths and little prefill padding, while no
example waits behind more than `window` later ones); a group of n examples is padded to
a row bucket (multiples of the mesh's `data` size, powers of two up to the pool size)
and its prompts to a multiple of 16 tokens (`prefill_length`), so a run compiles a
handful of prefill programs. The buckets are finer than static batches' powers of two:
prefill cost grows with the padded length, and a refill group is a few rows, not a
batch whose rows differ widely in length.
"""

from __future__ import annotations

from typing import Sequence

PREFILL_STEP = 16


def prefill_length(length: int) -> int:
    """A refill group's padded prompt length: the next multiple of `PREFILL_STEP`."""
    return -(-length // PREFILL_STEP) * PREFILL_STEP


def row_buckets(slots: int, data: int) -> tuple[int, ...]:
    """Refill group sizes: data * 1, 2, 4, ... below `slots`, then `slots`."""
    sizes, size = [], data
    while size < slots:
        sizes.append(size)
        size *= 2
    return tuple(sizes) + (slots,)


class Scheduler:
    """The waiting queue of one `generate` call.

    lengths: prompt + prior length of every example, in input order.
    window: how many of the oldest waiting examples are candidates at each refill.
    """

    def __init__(self, lengths: Sequence[int], window: int):
        self.lengths = list(lengths)
        self.window = max(1, window)
        self.waiting = list(range(len(lengths)))

    def __len__(self) -> int:
        return len(self.waiting)

    def take(self, count: int) -> list[int]:
        """Up to `count` example indices, shortest first among the window's oldest."""
        candidates = self.waiting[: max(self.window, count)]
        chosen = sorted(candidates, key=lambda i: (self.lengths[i], i))[:count]
        taken = set(chosen)
        self.waiting = [i for i in self.waiting if i not in taken]
        return chosen

    def prefill_shape(self, group: Sequence[int], slots: int, data: int) -> tuple[int, int]:
        """(rows, length) a group is padded to."""
        rows = next(r for r in row_buckets(slots, data) if r >= len(group))
        return rows, prefill_length(max(self.lengths[i] for i in group))
