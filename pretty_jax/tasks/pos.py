"""Part-of-speech tagging with Universal Dependencies UPOS tags: the CoNLL-U and XGLUE
readers, parsing a model's tag output, and scoring.

The model is shown the words of a sentence joined by single spaces (`Example.source`)
and asked for their UPOS tags, separated by spaces, one per word, in order
(`Example.reference` is that gold string, so few-shot examples show the format).

Formats read:
- CoNLL-U (`.conllu`/`.conll`, or any file whose first token line has 10 tab-separated
  columns): UPOS is column 4; comment lines (#), multiword-token lines ("3-4") and
  empty nodes ("5.1") are skipped, so "du" = "de le" yields the words "de" and "le".
- XGLUE's POS files (assumed layout): one `word<TAB>TAG` per line (a single space is
  accepted when there is no tab), a blank line between sentences, tags in UPOS.
Whitespace inside a word (UD allows "25 785") is removed, so that the source splits
back into exactly the sentence's words.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

from pretty_jax.core.errors import UserError
from pretty_jax.core.textio import read_lines
from pretty_jax.tasks import Example, apply_limit, metrics
from pretty_jax.tasks.languages import get_language

UPOS_TAGS = (
    "ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM",
    "PART", "PRON", "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X",
)  # fmt: skip
_UPOS = frozenset(UPOS_TAGS)
_WORD_ID = re.compile(r"[1-9][0-9]*")
_MULTIWORD_ID = re.compile(r"[1-9][0-9]*-[1-9][0-9]*")
_EMPTY_NODE_ID = re.compile(r"[0-9]+\.[1-9][0-9]*")
_ITEM_SEPARATORS = re.compile(r"[\s,;]+")
_PAIR_SEPARATORS = re.compile(r"[/_]")

Sentence = tuple[tuple[str, ...], tuple[str, ...]]  # (words, tags)


def read_tagged(path: Path) -> list[Sentence]:
    """The (words, UPOS tags) sentences of a CoNLL-U or XGLUE POS file."""
    lines = read_lines(path, "POS file")
    sentences = _sentences(path, lines, _conllu_token if _is_conllu(path, lines) else _xglue_token)
    if not sentences:
        raise UserError(f"{path} holds no tagged sentences; expected CoNLL-U or XGLUE's word<TAB>TAG lines")
    return sentences


def _is_conllu(path: Path, lines: list[str]) -> bool:
    if path.suffix in (".conllu", ".conll"):
        return True
    first = next((line for line in lines if line.strip() and not line.startswith("#")), "")
    return len(first.split("\t")) == 10


def _clean_word(word: str) -> str:
    return "".join(word.split())


def _check_tag(path: Path, number: int, tag: str) -> str:
    if tag not in _UPOS:
        raise UserError(f"{path}:{number}: unknown UPOS tag {tag!r}; UPOS tags are {' '.join(UPOS_TAGS)}")
    return tag


def _sentences(path: Path, lines: list[str], token: Callable[[Path, int, str, int], tuple[str, str] | None]) -> list[Sentence]:
    """Blank-line separated sentences; `token(path, number, line, words so far)` gives a
    line's (word, tag), or None for a line that is not a word."""
    sentences: list[Sentence] = []
    words: list[str] = []
    tags: list[str] = []
    for number, line in enumerate(lines + [""], start=1):
        if not line.strip():
            if words:
                sentences.append((tuple(words), tuple(tags)))
            words, tags = [], []
            continue
        word_tag = token(path, number, line, len(words))
        if word_tag is not None:
            words.append(word_tag[0])
            tags.append(word_tag[1])
    return sentences


def _conllu_token(path: Path, number: int, line: str, words_so_far: int) -> tuple[str, str] | None:
    if line.startswith("#"):
        return None
    columns = line.split("\t")
    if len(columns) != 10:
        raise UserError(f"{path}:{number}: a CoNLL-U token line needs 10 tab-separated columns, found {len(columns)}")
    token_id = columns[0]
    if _MULTIWORD_ID.fullmatch(token_id) or _EMPTY_NODE_ID.fullmatch(token_id):
        return None
    if not _WORD_ID.fullmatch(token_id):
        raise UserError(f"{path}:{number}: bad token ID {token_id!r}; expected 1, 2, ... (or 3-4, 5.1)")
    if int(token_id) != words_so_far + 1:
        raise UserError(f"{path}:{number}: word ID {token_id} should be {words_so_far + 1}; is a blank line missing?")
    return _clean_word(columns[1]), _check_tag(path, number, columns[3])


def _xglue_token(path: Path, number: int, line: str, words_so_far: int) -> tuple[str, str]:
    del words_so_far
    fields = line.rsplit("\t", 1) if "\t" in line else line.rsplit(None, 1)
    if len(fields) != 2 or not fields[0].strip():
        raise UserError(f"{path}:{number}: expected 'word<TAB>TAG', found {line!r}")
    return _clean_word(fields[0]), _check_tag(path, number, fields[1].strip())


def parse_tags(text: str) -> list[str]:
    """The UPOS tags in a model's output, in order, up to its first blank line.

    Items are separated by whitespace, commas or semicolons; an item "word/TAG" or
    "word_TAG" stands for its tag part; surrounding punctuation ("NOUN.", "(DET)") is
    ignored; case does not matter. Items that are not UPOS tags are dropped.
    """
    first_block = re.split(r"\n[ \t\r]*\n", text.strip(), maxsplit=1)[0]
    tags = []
    for item in _ITEM_SEPARATORS.split(first_block):
        candidate = _PAIR_SEPARATORS.split(item)[-1].strip("()[]{}<>\"'.:!?*").upper()
        if candidate in _UPOS:
            tags.append(candidate)
    return tags


class PosTask:
    """Tag the words of `lang` sentences (a code of languages.py) from a CoNLL-U or XGLUE
    file. Example ids are "sent-<index:05d>", index from 0. Source and target language
    are both `lang`; the requested output "language" is the UPOS tag set."""

    def __init__(self, path: Path, lang: str, limit: int | None = None):
        self._language = get_language(lang)
        self.source_lang = self.target_lang = self._language.code
        self.input_files = [Path(path)]
        sentences = apply_limit(read_tagged(Path(path)), limit)
        self._examples = [
            Example(id=f"sent-{index:05d}", source=" ".join(words), reference=" ".join(tags), words=words, tags=tags)
            for index, (words, tags) in enumerate(sentences)
        ]

    def examples(self) -> list[Example]:
        return list(self._examples)

    def prompt_fields(self) -> dict[str, str]:
        """{lang}: the language name; {upos_tags}: the 17 tags, space-separated."""
        return {"lang": self._language.name, "upos_tags": " ".join(UPOS_TAGS)}

    def postprocess(self, generated_text: str) -> str:
        """The parsed tags (`parse_tags`) joined by single spaces."""
        return " ".join(parse_tags(generated_text))

    def score(self, predictions: list[str], examples: list[Example]) -> dict[str, float | str]:
        """`metrics.pos_accuracy` plus "target_language_rate": for tagging, the share of
        predictions holding at least one UPOS tag."""
        predicted = [parse_tags(prediction) for prediction in predictions]
        scores: dict[str, float | str] = dict(metrics.pos_accuracy(predicted, [example.tags for example in examples]))
        scores["target_language_rate"] = sum(bool(tags) for tags in predicted) / len(predicted)
        return scores
