"""Which waiting examples a pool of slots admits next, and in what shapes.

Examples are taken in prompt-length order within a window of the oldest waiting ones
(so a refill group's prompts have similar lengths and little prefill padding, while no
example waits behind more than `window` later ones; a window of 1 takes them in input
order); a group of n examples is padded to a row bucket (multiples of the mesh's `data`
size, powers of two up to the pool size) and its prompts to a multiple of 16 tokens
(`prefill_length`), so a run compiles a handful of prefill programs.

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


def prefix_families(inputs: Sequence[Sequence[Sequence[int]]]) -> list[list[int]]:
    """Groups input indices into families: each family is [host, members...] where, in
    every stream, each member's tokens are a prefix of the host's (equal tokens
    included), members longest first; every index is in exactly one family; families
    in order of their first index. inputs[i][s]: input i's tokens in stream s.

    In lexicographic order the inputs a sequence is a prefix of come right after it, so
    each input joins the family of its successor when that extends it: a chain of
    prefixes ending at the longest (the none and oracle rows of one prompt, say). The
    chains are found on the first stream; a member that is not a prefix of its host in
    another stream gets a family of its own.
    """
    first = [tuple(x[0]) for x in inputs]
    order = sorted(range(len(inputs)), key=lambda i: (first[i], i))
    host_of: dict[int, int] = {}
    successor = None
    for i in reversed(order):
        n = len(first[i])
        extends = successor is not None and first[successor][:n] == first[i]
        host_of[i] = host_of[successor] if extends else i
        successor = i
    for i, host in host_of.items():
        if any(tuple(host_stream[: len(stream)]) != tuple(stream)
               for stream, host_stream in zip(inputs[i][1:], inputs[host][1:])):
            host_of[i] = i
    families: dict[int, list[int]] = {}
    for i in sorted(range(len(inputs)), key=lambda i: (-len(first[i]), i)):
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
