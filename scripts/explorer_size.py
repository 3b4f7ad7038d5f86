"""Size of the explorer page (alignment.html) for a given number of examples, steps
and prior-token counts on a large vocabulary.

    python scripts/explorer_size.py [--examples=100] [--steps=64] [--prior_token_counts=0,1,2]
                                    [--vocab_size=250880] [--page=OUT/<pair>/alignment.html]

The statistics are synthetic, the top-10 ids of both models drawn uniformly from the
vocabulary (so nearly every id is distinct: a worst case for the page's token table),
token texts 4-8 characters long. The page is built by the same code as a run's
(`explorer.page_data`, `explorer.page_html`). With --page, an existing page's size is
printed too. Last line: `explorer page_bytes=N examples=E steps=T prior_token_counts=K`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from absl import app, flags

from pretty_jax.alignment import explorer
from pretty_jax.alignment.statistics import STATISTICS

_EXAMPLES = flags.DEFINE_integer("examples", 100, "Examples on the page.")
_STEPS = flags.DEFINE_integer("steps", 64, "Trajectory steps per example.")
_PRIOR_TOKENS = flags.DEFINE_list("prior_token_counts", ["0", "1", "2"], "Numbers of prior tokens (one column each).")
_VOCAB = flags.DEFINE_integer("vocab_size", 250_880, "Vocabulary size (BLOOM's by default).")
_TOP = flags.DEFINE_integer("top_tokens", 10, "Top tokens per step per model.")
_PAGE = flags.DEFINE_string("page", None, "An existing alignment.html whose size to print as well.")


class _Tokenizer:
    """Token texts of 4-8 letters, one per id."""

    def __init__(self, seed: int):
        self.seed = seed

    def decode(self, ids):
        rng = np.random.default_rng([self.seed, int(ids[0])])
        return "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), size=int(rng.integers(4, 9))))

    def convert_ids_to_tokens(self, token_id):
        return "\u2581" + self.decode([token_id]) if token_id % 3 == 0 else self.decode([token_id])


def synthetic(examples: int, steps: int, prior_tokens: list[int], vocab: int, top: int, seed: int = 0):
    """(report, prompts, tops) shaped as a run's."""
    rng = np.random.default_rng(seed)
    by_prior, tops = {}, {}
    for k in prior_tokens:
        entries, top_arrays = [], []
        for index in range(examples):
            values = {name: rng.random(steps) for name in STATISTICS}
            values["sft_rank_in_lm"] = rng.geometric(0.4, size=steps) - 1
            entries.append({"id": f"example-{index:05d}", "prior": rng.integers(0, vocab, k).tolist(),
                            "trajectory": rng.integers(0, vocab, steps).tolist(), "steps": values})
            top_arrays.append({
                f"{model}_top_ids": rng.integers(0, vocab, (steps, top)) for model in ("lm", "sft")
            } | {f"{model}_top_logprobs": np.sort(np.log(rng.random((steps, top))))[:, ::-1] for model in ("lm", "sft")})
        by_prior[str(k)], tops[str(k)] = {"examples": entries}, top_arrays
    report = {"foundation": "foundation", "sft": "sft", "trajectory": "foundation", "by_prior_tokens": by_prior}
    prompts = [f"Translate the following sentence from English to French. English: sentence {i} .\nFrench:"
               for i in range(examples)]
    return report, prompts, tops


def main(argv: list[str]) -> None:
    del argv
    prior_tokens = [int(k) for k in _PRIOR_TOKENS.value]
    report, prompts, tops = synthetic(_EXAMPLES.value, _STEPS.value, prior_tokens, _VOCAB.value, _TOP.value)
    data = explorer.page_data(report, prompts, tops, _Tokenizer(1))
    page = explorer.page_html(data, "size check").encode("utf-8")
    print(f"distinct tokens on the page: {len(data['tokens'])} of a {_VOCAB.value}-token vocabulary")
    if _PAGE.value:
        print(f"{_PAGE.value}: {Path(_PAGE.value).stat().st_size} bytes")
    print(f"explorer page_bytes={len(page)} examples={_EXAMPLES.value} steps={_STEPS.value} "
          f"prior_token_counts={len(prior_tokens)}")


if __name__ == "__main__":
    app.run(main)
