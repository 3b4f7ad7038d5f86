"""Appending results that finish out of order to a stage file in example order.

Continuous batching finishes examples in any order; a stage file must hold a prefix of
the examples in order (that is what makes a resumed run byte-identical). `InOrder`
holds each finished record until every earlier example is finished too, then appends
the completed prefix with one write.
"""

from __future__ import annotations

from typing import Any, Mapping

from pretty_jax.experiments.stages import JsonlStage


class InOrder:
    """Writes records of examples `first`, `first + 1`, ... to `stage` in that order.

    write: False on processes other than process 0 (they keep the records only).
    """

    def __init__(self, stage: JsonlStage, first: int, write: bool = True):
        self.stage, self.next, self.write = stage, first, write
        self.held: dict[int, Mapping[str, Any]] = {}

    def add(self, index: int, record: Mapping[str, Any]) -> None:
        """Example `index` finished; appends it with every held record it completes."""
        if index < self.next or index in self.held:
            raise ValueError(f"example {index} was already written or held")
        self.held[index] = record
        prefix = []
        while self.next in self.held:
            prefix.append(self.held.pop(self.next))
            self.next += 1
        if prefix:
            self.stage.append(prefix, write=self.write)

    @property
    def pending(self) -> int:
        """Finished records still waiting for an earlier example."""
        return len(self.held)
