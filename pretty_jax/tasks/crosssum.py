"""Cross-lingual summarisation on CrossSum: reading its jsonl files, shortening long
documents to a token budget, and scoring with ROUGE and the target-language rate.

A CrossSum file holds one language pair: one JSON object per line with the document
`text` (in the source language) and its `summary` (in the target language); other keys
(`source_url`, `target_url`, ...) are ignored. Blank lines are skipped.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from pathlib import Path
from typing import Callable

from pretty_jax.core.errors import UserError
from pretty_jax.core.textio import read_jsonl
from pretty_jax.tasks import Example, apply_limit, metrics
from pretty_jax.tasks.languages import get_language, is_word_char

# Han, kana, Thai, Lao, Khmer, Myanmar: scripts written without spaces between words,
# where a document may be cut between any two characters.
_UNSPACED_RANGES = (
    (0x0E00, 0x0EFF),
    (0x1000, 0x109F),
    (0x1780, 0x17FF),
    (0x3040, 0x30FF),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0x20000, 0x3134F),
)


def read_crosssum(path: Path) -> list[tuple[str, str]]:
    """(text, summary) pairs of a CrossSum jsonl file, in file order."""
    records = read_jsonl(path, "CrossSum file", ("text", "summary"))
    return [(record["text"], record["summary"]) for _, record in records]


def truncate_documents(
    examples: list[Example], count_tokens: Callable[[str], int], max_tokens: int
) -> tuple[list[Example], int]:
    """`examples` with each `source` cut to its longest beginning that has at most
    `max_tokens` tokens, and how many were cut.

    Cuts fall between words (at spaces or punctuation), or between any two characters
    of scripts written without spaces (Chinese, Japanese, Thai); a single word longer
    than the budget is cut between characters. Trailing spaces of a cut are dropped.
    Assumes the token count grows with the text (true of subword tokenizers up to a
    token or so at the cut; the result is checked, never over budget).
    """
    if max_tokens < 1:
        raise UserError(f"max_tokens={max_tokens}: give a positive number of document tokens")
    if count_tokens("") > max_tokens:
        raise UserError(
            f"max_tokens={max_tokens} leaves no room for any document text (an empty one counts {count_tokens('')})"
        )
    shortened, truncated = [], 0
    for example in examples:
        source = example.source
        if count_tokens(source) > max_tokens:
            source = _longest_fitting_prefix(source, count_tokens, max_tokens)
            truncated += 1
        shortened.append(dataclasses.replace(example, source=source))
    return shortened, truncated


def _longest_fitting_prefix(text: str, count_tokens: Callable[[str], int], max_tokens: int) -> str:
    def fits(cut: int) -> bool:
        return count_tokens(text[:cut].rstrip()) <= max_tokens

    word_cuts = [cut for cut in range(1, len(text)) if _can_cut(text[cut - 1], text[cut])]
    best = _last_fitting(word_cuts, fits)
    if best == 0:  # not even the first word fits
        best = _last_fitting([cut for cut in range(1, len(text)) if not _is_mark(text[cut])], fits)
    return text[:best].rstrip()


def _last_fitting(cuts: list[int], fits: Callable[[int], bool]) -> int:
    """The largest cut that fits, by binary search (0 when none does)."""
    low, high = 0, len(cuts)  # cuts[:low] fit, cuts[high:] do not
    while low < high:
        middle = (low + high) // 2
        if fits(cuts[middle]):
            low = middle + 1
        else:
            high = middle
    return cuts[low - 1] if low else 0


def _can_cut(before: str, after: str) -> bool:
    """Whether a document may be cut between two neighbouring characters."""
    if _is_mark(after):
        return False
    if not (is_word_char(before) and is_word_char(after)):
        return True
    return _is_unspaced(before) or _is_unspaced(after)


def _is_mark(char: str) -> bool:
    return unicodedata.category(char).startswith("M")


def _is_unspaced(char: str) -> bool:
    return any(first <= ord(char) <= last for first, last in _UNSPACED_RANGES)


class CrossSumTask:
    """Summarise `source_lang` documents in `target_lang` (codes of languages.py), from
    one CrossSum jsonl file. Example ids are "crosssum-<index>", index from 0."""

    def __init__(self, path: Path, source_lang: str, target_lang: str, limit: int | None = None):
        self._source = get_language(source_lang)
        self._target = get_language(target_lang)
        self.source_lang = self._source.code
        self.target_lang = self._target.code
        self.input_files = [Path(path)]
        pairs = apply_limit(read_crosssum(Path(path)), limit)
        self._examples = [
            Example(id=f"crosssum-{index}", source=text, reference=summary)
            for index, (text, summary) in enumerate(pairs)
        ]

    def examples(self) -> list[Example]:
        return list(self._examples)

    def prompt_fields(self) -> dict[str, str]:
        return {"src_lang": self._source.name, "tgt_lang": self._target.name}

    def postprocess(self, generated_text: str) -> str:
        return generated_text.strip()

    def score(self, predictions: list[str], examples: list[Example]) -> dict[str, float | bool | str | None]:
        references = [example.reference for example in examples]
        scores: dict[str, float | bool | str | None] = dict(metrics.rouge_scores(predictions, references, self.target_lang))
        scores |= metrics.target_language_scores(predictions, self.target_lang)
        sources = [example.source for example in examples]
        scores["source_language_rate"] = metrics.source_language_rate(predictions, sources, self.source_lang)
        return scores
