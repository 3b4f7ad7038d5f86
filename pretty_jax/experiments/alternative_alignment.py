"""Alignment statistics of an alternative system (alternatives.py) with the SFT model:
along the system's own outputs, its next-token distribution — the softmax of its
rule's combined logits, each stream teacher-forced over its prompt + prior +
trajectory — against the SFT model's over the SFT prompt + prior + trajectory. The
statistics and summaries are the alignment package's (`step_statistics`, `aggregate`:
KL(SFT||system), top-K agreement, token shift, ...), with the system in the place of
the foundation ("lm"), so they compare with the priors' by k in alignment.json.

Each batch is one full forward per stream over rows padded to one bucketed length
([B, T, V] logits per stream): meant for the organism and small models; the priors'
statistics (alignment/statistics.py) are the chunked ones.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from pretty_jax.alignment.statistics import STATISTICS, step_statistics
from pretty_jax.alignment.summary import aggregate
from pretty_jax.engine.batching import left_pad
from pretty_jax.engine.generator import System
from pretty_jax.engine.scheduler import prefill_length
from pretty_jax.models import Model, forward


def _next_logits(model: Model, prefixes: Sequence[Sequence[int]], trajectories: Sequence[Sequence[int]],
                 pad_id: int) -> list[np.ndarray]:
    """Per row, the logits [len(trajectory), V] that predict each trajectory token."""
    rows = [list(p) + list(t) for p, t in zip(prefixes, trajectories)]
    length = prefill_length(max(len(r) for r in rows))
    tokens, mask, positions = left_pad(rows, pad_id, length)
    logits = np.asarray(forward(model.graphdef, model.params, tokens, positions, mask)[0], np.float32)
    out = []
    for row, trajectory in zip(logits, trajectories):
        first = length - len(trajectory) - 1  # the prefix's last column predicts trajectory[0]
        out.append(row[first : first + len(trajectory)])
    return out


def system_alignment(system: System, sft: Model, stream_prefixes: Sequence[tuple[Sequence[int], ...]],
                     sft_prefixes: Sequence[Sequence[int]], trajectories: Sequence[Sequence[int]],
                     top_k: Sequence[int], pad_id: int, batch_size: int) -> dict:
    """The overall SUMMARY (alignment/summary.py) of `system` against `sft` along
    `trajectories` (tokens after each prefix; the prior ends each prefix)."""
    per_example = []
    keep = [i for i, t in enumerate(trajectories) if len(t)]
    for start in range(0, len(keep), batch_size):
        rows = keep[start : start + batch_size]
        paths = [trajectories[i] for i in rows]
        streams = [_next_logits(model, [stream_prefixes[i][s] for i in rows], paths, pad_id)
                   for s, model in enumerate(system.models)]
        sft_logits = _next_logits(sft, [sft_prefixes[i] for i in rows], paths, pad_id)
        for k in range(len(rows)):
            steps = np.arange(len(paths[k]), dtype=np.int32)
            combined = system.rule.combine(tuple(stream[k] for stream in streams), steps)
            values = step_statistics(combined, sft_logits[k])
            per_example.append({name: np.asarray(values[name]) for name in STATISTICS})
    per_example += [{name: np.zeros(0) for name in STATISTICS} for t in trajectories if not len(t)]
    overall, _ = aggregate(per_example, top_k)
    return overall
