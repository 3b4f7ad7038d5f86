"""The cases that the single-device, multi-device and multi-process tests all run, so
that their outputs can be compared exactly."""

from __future__ import annotations

from pretty_jax.alignment.statistics import AlignmentScorer
from pretty_jax.checkpoints.sample_text import SENTENCES
from pretty_jax.engine.generator import DecodeConfig, Generator
from pretty_jax.engine.strategies import BeamSearch, Greedy, Sampling

PRIORS = ([], [10], [20, 30], [], [7], [3, 4, 5])
CASES = {
    "greedy": DecodeConfig(max_new_tokens=10, strategy=Greedy()),
    "sampling": DecodeConfig(max_new_tokens=10, strategy=Sampling(0.9, top_k=40, top_p=0.95), seed=7),
    "beams": DecodeConfig(max_new_tokens=8, strategy=BeamSearch(num_beams=3)),
}


def run_cases(generator: Generator, tokenizer) -> dict[str, list[list[int]]]:
    prompts = [tokenizer(s).input_ids for s in SENTENCES[: len(PRIORS)]]
    return {
        name: [list(g.tokens) for g in generator.generate(prompts, list(PRIORS), config)]
        for name, config in CASES.items()
    }


def alignment_case(foundation, sft, tokenizer, mesh=None) -> dict[str, list[list[float]]]:
    """Alignment statistics of ragged prefixes and trajectories (lengths 0..13)."""
    prompts = [tokenizer(s).input_ids for s in SENTENCES[: len(PRIORS)]]
    prefixes = [p + list(q) for p, q in zip(prompts, PRIORS)]
    trajectories = [list(range(20, 20 + n)) for n in (7, 13, 0, 4, 9, 1)]
    scorer = AlignmentScorer(foundation, sft, mesh=mesh, batch_size=4, chunk=4)
    per_example = scorer.score(prefixes, trajectories)
    return {name: [e[name].tolist() for e in per_example] for name in per_example[0]}
