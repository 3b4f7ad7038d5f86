"""The reference the multi-model decoding tests compare against: greedy decoding by a
rule over several models' logits, each model teacher-forced with full forwards."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from pretty_jax.engine.batching import left_pad
from pretty_jax.models import forward

# Every forward is left-padded to this width: one compiled program serves every step.
WIDTH = 64


def teacher_forced_greedy(models: Sequence, stream_prompts: Sequence[Sequence[int]], prior: Sequence[int],
                          steps: int, score: Callable[[tuple, np.ndarray], np.ndarray],
                          eos: frozenset[int] = frozenset()) -> list[int]:
    """Greedy decoding by `score(logits per model [1, V] each, step [1]) -> [1, V]`, each
    model teacher-forced over its own prompt + `prior` + the tokens chosen so far; stops
    after `steps` tokens or at a token in `eos`."""
    chosen: list[int] = []
    for step in range(steps):
        logits = []
        for model, prompt in zip(models, stream_prompts):
            tokens, mask, positions = left_pad([list(prompt) + list(prior) + chosen], 0, WIDTH)
            logits.append(np.asarray(forward(model.graphdef, model.params, tokens, positions, mask)[0])[0, -1:])
        chosen.append(int(np.argmax(score(tuple(logits), np.array([step]))[0])))
        if chosen[-1] in eos:
            break
    return chosen
