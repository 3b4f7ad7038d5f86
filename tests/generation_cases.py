"""The generation cases that the single-device, multi-device and multi-process tests
all run, so that their outputs can be compared token for token."""

from __future__ import annotations

from pretty_jax.generate import DecodeConfig, Generator
from pretty_jax.sample_text import SENTENCES
from pretty_jax.sampling import BeamSearch, Greedy, Sampling

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
