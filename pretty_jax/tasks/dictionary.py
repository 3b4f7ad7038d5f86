"""Free ("pseudo") priors: a bilingual dictionary for translation, a tag lexicon for
POS tagging.

- `read_muse` reads a MUSE dictionary (`src tgt` per line, most frequent first).
- `dictionary_prior_words` translates the first word(s) of a source sentence;
  `dictionary_prior_options` lists every translation of each of them.
- `tag_lexicon` / `lexicon_prior_tags` give the usual tag of the first word(s).

Source sentences are split into words with `languages.split_words` (runs of letters,
digits and combining marks; punctuation and spaces separate words and are skipped), so
"«Don't" gives "Don", "t". Scripts written without spaces (Chinese, Japanese, Thai)
come out as whole runs, which a dictionary rarely holds: the dictionary prior is meant
for sources like English.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Iterable, Mapping, Sequence, TypeVar

from pretty_jax.core.errors import UserError
from pretty_jax.core.textio import read_lines
from pretty_jax.tasks import Example
from pretty_jax.tasks.languages import split_words

Entry = TypeVar("Entry")


def read_muse(path: Path) -> dict[str, tuple[str, ...]]:
    """source word -> its translations in file order (most frequent first), without
    repeated pairs. Blank lines are skipped."""
    entries: dict[str, list[str]] = {}
    for number, line in enumerate(read_lines(Path(path), "MUSE dictionary"), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise UserError(
                f"{path}:{number}: expected 'source target' (two words), found {len(fields)} fields: {line!r}"
            )
        source, target = fields
        translations = entries.setdefault(source, [])
        if target not in translations:
            translations.append(target)
    if not entries:
        raise UserError(f"MUSE dictionary {path} has no entries; expected 'source target' lines")
    return {source: tuple(targets) for source, targets in entries.items()}


def _check_count(name: str, value: int) -> None:
    if value < 1:
        raise UserError(f"{name}={value}: give a positive number")


def _lookup(word: str, table: Mapping[str, Entry]) -> Entry | None:
    """The entry for `word` as written, else for its lower-cased form."""
    if word in table:
        return table[word]
    return table.get(word.lower())


def dictionary_prior_options(
    source: str, dictionary: Mapping[str, Sequence[str]], num_words: int = 1
) -> list[tuple[str, ...]] | None:
    """Every listed translation of the first source word with an entry and of the words
    right after it (up to `num_words` words, stopping at the first word without an
    entry): one tuple per word, in dictionary order. None when no word has an entry.

    When the translated word opens the source and is capitalised, so are its
    translations ("The cat" with the: die -> "Die").
    """
    _check_count("num_words", num_words)
    words = split_words(source)
    start = next((i for i, word in enumerate(words) if _lookup(word, dictionary)), None)
    if start is None:
        return None
    options = []
    for word in words[start : start + num_words]:
        entry = _lookup(word, dictionary)
        if not entry:
            break
        options.append(tuple(entry))
    if start == 0 and words[0][:1].isupper():
        options[0] = tuple(t[:1].upper() + t[1:] for t in options[0])
    return options


def dictionary_prior_words(source: str, dictionary: Mapping[str, Sequence[str]], num_words: int = 1) -> str | None:
    """The pseudo prior: the first-listed translation of each word of
    `dictionary_prior_options`, joined by spaces. None when no word has an entry."""
    options = dictionary_prior_options(source, dictionary, num_words)
    return None if options is None else " ".join(translations[0] for translations in options)


def tag_lexicon(examples: Iterable[Example]) -> dict[str, str]:
    """word -> its most frequent UPOS tag in tagged examples (ties: the tag seen first)."""
    counts: dict[str, collections.Counter[str]] = {}
    for example in examples:
        for word, tag in zip(example.words, example.tags, strict=True):
            counts.setdefault(word, collections.Counter())[tag] += 1
    # Counter keeps insertion order and max() keeps the first maximum.
    return {word: max(tags, key=tags.__getitem__) for word, tags in counts.items()}


def lexicon_prior_tags(words: Sequence[str], lexicon: Mapping[str, str], num_tags: int = 1) -> str | None:
    """The lexicon tags of the first `num_tags` words, joined by spaces, stopping at the
    first word the lexicon does not hold; None when it does not hold the first word."""
    _check_count("num_tags", num_tags)
    tags = []
    for word in words[:num_tags]:
        tag = _lookup(word, lexicon)
        if tag is None:
            break
        tags.append(tag)
    return " ".join(tags) or None
