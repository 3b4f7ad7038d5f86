"""Speed and memory of the alignment statistics.

    python scripts/bench_alignment.py

1. A tiny BLOOM-shaped pair with BLOOM's 250,880-token vocabulary, batch 8, 512
   trajectory steps: time and peak resident memory of the statistics pass, against
   the float32 size of [B, T, V] logits of the two models (what a naive pass holds).
2. The ~134M LLaMA of the decode benchmark (random weights, float32): time of the
   statistics pass relative to one plain forward of both models (logits [B, T, V]).

Last line: `alignment overhead=X.XX peak_mb=Y` (overhead from 2, peak from 1).
"""

from __future__ import annotations

import resource
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from pretty_jax.alignment.statistics import AlignmentScorer
from pretty_jax.models import Model, bloom, forward, init_model, llama

_BATCH = flags.DEFINE_integer("batch", 8, "Examples per batch.")
_STEPS = flags.DEFINE_integer("steps", 512, "Trajectory steps per example.")
_PREFIX = flags.DEFINE_integer("prefix", 64, "Prompt + prior tokens per example.")
_CHUNK = flags.DEFINE_integer("chunk", 16, "Steps per statistics chunk.")
_REPEATS = flags.DEFINE_integer("repeats", 2, "Timed runs (the best counts).")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _model(config, seed: int) -> Model:
    graphdef, params = init_model(config, jnp.float32, seed)
    return Model(config=config, graphdef=graphdef, params=params)


def _inputs(vocab: int) -> tuple[list[list[int]], list[list[int]]]:
    rng = np.random.default_rng(0)
    prefixes = [rng.integers(3, vocab, _PREFIX.value).tolist() for _ in range(_BATCH.value)]
    trajectories = [rng.integers(3, vocab, _STEPS.value).tolist() for _ in range(_BATCH.value)]
    return prefixes, trajectories


def _best(run) -> float:
    run()
    times = []
    for _ in range(_REPEATS.value):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def large_vocabulary() -> float:
    config = bloom.config_from_hf(
        dict(model_type="bloom", vocab_size=250880, hidden_size=64, n_layer=2, n_head=4), "tiny-bloom"
    )
    lm, sft = _model(config, 0), _model(config, 1)
    prefixes, trajectories = _inputs(config.vocab_size)
    before = _peak_mb()
    scorer = AlignmentScorer(lm, sft, batch_size=_BATCH.value, chunk=_CHUNK.value)
    seconds = _best(lambda: scorer.score(prefixes, trajectories))
    peak = _peak_mb()
    naive_mb = 2 * _BATCH.value * _STEPS.value * config.vocab_size * 4 / 2**20
    print(f"vocab {config.vocab_size}, batch {_BATCH.value}, {_STEPS.value} steps: {seconds:.2f}s; peak RSS "
          f"{peak:.0f} MB (before the pass {before:.0f} MB); two [B,T,V] float32 logits would be {naive_mb:.0f} MB")
    return peak


def relative_to_forward() -> float:
    hf = dict(model_type="llama", vocab_size=32000, hidden_size=768, intermediate_size=2048,
              num_hidden_layers=12, num_attention_heads=12)
    config = llama.config_from_hf(hf, "llama-130m")
    lm, sft = _model(config, 0), _model(config, 1)
    prefixes, trajectories = _inputs(config.vocab_size)
    scorer = AlignmentScorer(lm, sft, batch_size=_BATCH.value, chunk=_CHUNK.value)
    stats_seconds = _best(lambda: scorer.score(prefixes, trajectories))
    tokens = np.array([p + t for p, t in zip(prefixes, trajectories)], np.int32)
    mask = np.ones_like(tokens)
    positions = np.broadcast_to(np.arange(tokens.shape[1], dtype=np.int32), tokens.shape)
    run = jax.jit(forward, static_argnums=0)

    def both_forwards():
        for model in (lm, sft):
            jax.block_until_ready(run(model.graphdef, model.params, tokens, positions, mask)[0])

    forward_seconds = _best(both_forwards)
    print(f"llama-130m, batch {_BATCH.value}, {_PREFIX.value}+{_STEPS.value} tokens: statistics "
          f"{stats_seconds:.2f}s, two plain forwards {forward_seconds:.2f}s")
    return stats_seconds / forward_seconds


def main(argv: list[str]) -> None:
    del argv
    peak = large_vocabulary()
    overhead = relative_to_forward()
    print(f"alignment overhead={overhead:.2f} peak_mb={peak:.0f}")


if __name__ == "__main__":
    app.run(main)
