"""The source-language rate: the share of outputs that stay in the source language or
copy the source (the failure PreTTY is about: asked to translate or summarise into
another language, a foundation model answers in the language of its input).

An output counts when either
- the target-language measure (target_language.py) finds it in the task's source
  language, or
- it copies its source: after Unicode normalisation (NFKC), case folding and keeping
  only words, it equals the source, or its chrF against the source (sacrebleu's
  sentence chrF, character 6-grams, no word n-grams) is >= `COPY_CHRF`. Real
  translations stay below that: over all 101 Flores-101 devtest references against their
  English sources the highest chrF is 84.4 (a Tagalog sentence of names and numbers);
  no reference reaches 85.
"""

from __future__ import annotations

import unicodedata
from typing import Sequence

from sacrebleu.metrics import CHRF

from pretty_jax.tasks.languages import split_words
from pretty_jax.tasks.target_language import classify

COPY_CHRF = 90.0
_CHRF = CHRF()


def _normalised(text: str) -> str:
    return " ".join(split_words(unicodedata.normalize("NFKC", text).casefold()))


def is_copy(output: str, source: str) -> bool:
    """Whether `output` copies `source` (see the module docstring); an empty output
    copies nothing."""
    if not _normalised(output):
        return False
    return _normalised(output) == _normalised(source) or _CHRF.sentence_score(output, [source]).score >= COPY_CHRF


def is_source_language(output: str, source: str, source_lang: str) -> bool:
    """Whether `output` is in the source language or copies its `source`."""
    return is_copy(output, source) or classify(output, source_lang) == "target"


def source_language_rate(outputs: Sequence[str], sources: Sequence[str], source_lang: str) -> float:
    """The fraction of `outputs` in `source_lang` or copying their aligned `sources`."""
    if len(outputs) != len(sources):
        raise ValueError(f"{len(outputs)} outputs for {len(sources)} sources")
    if not outputs:
        raise ValueError("nothing to score: no outputs")
    return sum(is_source_language(o, s, source_lang) for o, s in zip(outputs, sources)) / len(outputs)
