"""The script a text is written in, from the Unicode Scripts data that
`fontTools.unicodedata` ships: the first test of the target-language measure (a text in
another script is off target without further ado)."""

from __future__ import annotations

import collections
import functools

from fontTools import unicodedata as unicode_scripts

from pretty_jax.tasks.languages import Language, split_words, usual_script

# ISO 15924 codes that `text_script` reports for a language's script.
_DETECTED_AS = {"Hans": "Hani", "Hant": "Hani", "Kore": "Hang"}
_KANA = ("Hira", "Kana")
_CHARACTER_SCRIPTS = ("Hani", "Hira", "Kana")
# Scripts written without spaces between words: a run of their letters is a phrase, so
# each letter counts (a Lao sentence with three Latin names is still Lao).
_LETTER_SCRIPTS = ("Thai", "Laoo", "Khmr", "Mymr")


@functools.cache  # a text's characters repeat: a lookup per distinct character
def char_script(char: str) -> str | None:
    """The ISO 15924 script of a letter; None for shared characters (digits,
    punctuation: "Zyyy"), combining marks ("Zinh") and unassigned code points."""
    script = unicode_scripts.script(char)
    return None if script in ("Zyyy", "Zinh", "Zzzz") else script


@functools.lru_cache(maxsize=1 << 16)  # one text is often judged for many languages (calibration)
def text_script(text: str) -> str | None:
    """The script of most of the text's words, counting each Han or kana character as a
    word (Chinese with a few Latin names is still Chinese), and each letter of the
    scripts written without spaces (Thai, Lao, Khmer, Burmese): an ISO 15924 code such as
    "Latn", "Cyrl", "Arab", "Deva", "Beng", "Thai", "Hang", "Grek", "Hani" (Han without
    kana) or "Jpan" (Han and kana together, when there is any kana); None without
    letters.
    """
    counts: collections.Counter[str | None] = collections.Counter()
    for word in split_words(text):
        scripts = [char_script(char) for char in word if char.isalpha()]
        counts.update(script for script in scripts if script in _CHARACTER_SCRIPTS + _LETTER_SCRIPTS)
        # The rest of the word counts once, for the script of its first other letter
        # (None for words of digits only or only letters counted above).
        rest = _CHARACTER_SCRIPTS + _LETTER_SCRIPTS
        counts[next((s for s in scripts if s is not None and s not in rest), None)] += 1
    counts.pop(None, None)
    han, kana = counts.pop("Hani", 0), sum(counts.pop(k, 0) for k in _KANA)
    if han + kana:
        counts["Jpan" if kana else "Hani"] = han + kana
    return max(counts, key=counts.__getitem__) if counts else None


def detected_script(language: Language) -> str:
    """What `text_script` reports for texts in `language`."""
    return _DETECTED_AS.get(language.script, language.script)


@functools.cache
def iso639_3_script(iso639_3: str) -> str | None:
    """What `text_script` reports for texts in the language of an ISO 639-3 code, from
    its usual script (CLDR); None where CLDR lists none."""
    script = usual_script(iso639_3)
    return None if script is None else _DETECTED_AS.get(script, script)
