"""Which waiting examples a continuous-batching pool admits next, and in what shapes.

Examples are taken in prompt-length order within a window of the oldest waiting ones
(so a refill group's prompts have similar lengths and little prefill padding, while no
example waits behind more than `window` later ones); a group of n examples is padded to
a row bucket (multiples of the mesh's `data` size, powers of two up to the pool size)
and its prompts to a multiple of 16 tokens (`prefill_length`), so a run compiles a
handful of prefill programs. The buckets are finer than static batches' powers of two:
prefill cost grows with the padded length, and a refill group is a few rows, not a
batch whose rows differ widely in length.

Examples whose tokens are a prefix of another example's (the no-prior system of a
prompt, beside the same prompt with a prior) form a family with it (`prefix_families`):
the scheduler takes whole families, and one prefill of the longest member serves them
all.
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


def prefix_families(inputs: Sequence[Sequence[int]]) -> list[list[int]]:
    """Groups input indices into families: each family is [host, members...] where every
    member's tokens are a prefix of the host's (equal tokens included), members longest
    first; every index is in exactly one family; families in order of their first index.

    In lexicographic order the inputs a sequence is a prefix of come right after it, so
    each input joins the family of its successor when that extends it: a chain of
    prefixes ending at the longest (the none and oracle rows of one prompt, say).
    """
    order = sorted(range(len(inputs)), key=lambda i: (tuple(inputs[i]), i))
    host_of: dict[int, int] = {}
    successor = None
    for i in reversed(order):
        n = len(inputs[i])
        extends = successor is not None and list(inputs[successor][:n]) == list(inputs[i])
        host_of[i] = host_of[successor] if extends else i
        successor = i
    families: dict[int, list[int]] = {}
    for i in sorted(range(len(inputs)), key=lambda i: (-len(inputs[i]), i)):
        families.setdefault(host_of[i], []).append(i)
    return sorted(families.values(), key=min)


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
