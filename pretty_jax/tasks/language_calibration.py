"""Builds the target-language measure's calibration table (target_language_calibration.json)
from Flores-101 devtest references, and measures it on held-out text.

Per language, every decider of target_language.py that can serve it is tried on the
*calibration lines* (the first 500 of each devtest file): "script", each identifier that
knows the language, "unidentified" where CLD2 does not, and "any:" of every combination
of two or more of those. For each, three rates:
- reference rate: the share of the language's own references on target;
- English-source rate: the share of the 1,012 English source sentences on target;
- most accepted other: the highest share of another Flores-101 language's references on
  target, among those of the same script that one of the decider's identifiers knows,
  close relatives and the language itself under another code left out (zho_simpl /
  zho_trad).
The chosen decider has the highest reference rate among those with an English-source
rate <= `MAX_SOURCE_RATE` and no other language above `MAX_OTHER_RATE` (failing that,
the highest reference rate minus the worse of the two); the language is reliable when it
meets all three bounds (`MIN_REFERENCE_RATE`). The rate on the *held-out lines* (500 to
the end), which took no part in the choice, is recorded beside it.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Mapping, Sequence

from pretty_jax.tasks import language_identifiers as identifiers
from pretty_jax.tasks.close_relatives import verdict
from pretty_jax.tasks.languages import FLORES101_CODES, Language, get_language
from pretty_jax.tasks.target_language import (
    classify,
    decide,
    decider_identifiers,
    knowing_identifiers,
    script_is_unique,
)
from pretty_jax.tasks.writing_systems import detected_script, text_script

SCHEMA = "pretty_jax/target_language_calibration/1"
CALIBRATION_LINES = 500
MIN_REFERENCE_RATE = 0.95
MAX_SOURCE_RATE = 0.02
MAX_OTHER_RATE = 0.1
# UD dev treebanks (file name prefix) and WMT newstest files (suffix) -> language code.
UD_LANGUAGES = {"de_gsd": "deu", "fr_gsd": "fra", "zh_gsdsimp": "zho_simpl"}
WMT_LANGUAGES = {"cs": "ces", "de": "deu", "en": "eng", "es": "spa", "fr": "fra", "ru": "rus"}


def read_flores(folder: Path) -> dict[str, list[str]]:
    """Flores-101 code -> the lines of `<code>.devtest`, for every Flores-101 language."""
    return {code: (folder / f"{code}.devtest").read_text(encoding="utf-8").splitlines() for code in FLORES101_CODES}


def candidate_deciders(language: Language) -> list[str]:
    """Every decider that can serve `language`, simplest first: the script, each
    identifier that knows it, "unidentified" where CLD2 does not, and "any:" of every
    combination of two or more of those."""
    knowing = knowing_identifiers(language)
    components = list(knowing) + ([] if "cld2" in knowing else ["unidentified"])
    candidates = ["script"] + components
    for size in range(2, len(components) + 1):
        candidates += ["any:" + "+".join(names) for names in itertools.combinations(components, size)]
    return candidates


class _Texts:
    """The Flores lines with their scripts and every identifier's guesses, computed once."""

    def __init__(self, flores: Mapping[str, Sequence[str]]):
        self.lines = {code: list(lines) for code, lines in flores.items()}
        self.scripts = {code: [text_script(t) for t in lines] for code, lines in self.lines.items()}
        self._guesses = {
            (name, text): identifiers.guesses(name, text)
            for lines in self.lines.values() for text in lines for name in identifiers.NAMES
        }  # fmt: skip

    def guesses(self, name: str, text: str) -> tuple[str, ...]:
        return self._guesses[(name, text)]

    def rate(self, decider: str, code: str, language: Language, lines: slice, outcome: str = "target") -> float:
        """The share of `code`'s `lines` that `decider` gives `outcome` for `language`."""
        script, texts = detected_script(language), self.lines[code][lines]
        hits = sum(
            s == script and decide(decider, t, language, self.guesses) == outcome
            for t, s in zip(texts, self.scripts[code][lines])
        )
        return hits / len(texts)


def _others(language: Language, decider: str) -> list[str]:
    """Flores-101 codes whose references `decider` must not take for `language`'s: of the
    same script, known to one of its identifiers (to any, for the script alone), neither
    a close relative nor the language itself under another code."""
    # The script alone knows no language: every identifier's languages count against it.
    names = set(identifiers.NAMES if decider == "script" else decider_identifiers(decider))
    return [
        code for code in FLORES101_CODES
        if detected_script(get_language(code)) == detected_script(language)
        and verdict(get_language(code).iso639_3, language) == "other"
        and names & set(knowing_identifiers(get_language(code)))
    ]  # fmt: skip


def _measure(texts: _Texts, decider: str, language: Language) -> dict:
    calibration = slice(0, CALIBRATION_LINES)
    others = [(texts.rate(decider, code, language, calibration), code) for code in _others(language, decider)]
    worst = max(others, default=(0.0, None))
    return {
        "decider": decider,
        "reference_rate": texts.rate(decider, language.code, language, calibration),
        "close_relative_rate": texts.rate(decider, language.code, language, calibration, "close relative"),
        "english_source_rate": None if language.code == "eng" else texts.rate(decider, "eng", language, slice(None)),
        "most_accepted_other": {"language": worst[1], "rate": worst[0]},
    }


def _bounds_met(row: dict) -> bool:
    return (row["english_source_rate"] or 0.0) <= MAX_SOURCE_RATE and row["most_accepted_other"]["rate"] <= MAX_OTHER_RATE


def _choose(rows: list[dict]) -> dict:
    within = [row for row in rows if _bounds_met(row)]
    if within:
        return max(within, key=lambda row: row["reference_rate"])  # max keeps the first (simplest) of equals
    penalty = lambda row: max(row["english_source_rate"] or 0.0, row["most_accepted_other"]["rate"])  # noqa: E731
    return max(rows, key=lambda row: row["reference_rate"] - penalty(row))


def calibrate(flores: Mapping[str, Sequence[str]]) -> dict:
    """The calibration table for every Flores-101 language: {"schema", "identifiers",
    "calibration_lines", "bounds", "languages": {code: row}} (see the module docstring;
    rates rounded to 4 decimals)."""
    texts = _Texts(flores)
    languages = {}
    for code in FLORES101_CODES:
        language = get_language(code)
        candidates = ["script"] if script_is_unique(language) else candidate_deciders(language)
        row = _choose([_measure(texts, decider, language) for decider in candidates])
        row["reference_rate_held_out"] = texts.rate(row["decider"], code, language, slice(CALIBRATION_LINES, None))
        row["reliable"] = row["reference_rate"] >= MIN_REFERENCE_RATE and _bounds_met(row)
        languages[code] = _rounded(row)
    return {
        "schema": SCHEMA,
        "identifiers": {name: identifiers.version(name) for name in identifiers.NAMES},
        "calibration_lines": CALIBRATION_LINES,
        "bounds": {"min_reference_rate": MIN_REFERENCE_RATE, "max_english_source_rate": MAX_SOURCE_RATE,
                   "max_other_language_rate": MAX_OTHER_RATE},
        "languages": languages,
    }  # fmt: skip


def _rounded(value):
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    return value


def held_out_domains(data: Path) -> list[dict]:
    """The measure (as shipped) on text of other domains under `data` (laid out like
    ../shared/data): WMT newstest2013 news sentences and UD dev sentences (`# text =`),
    each against its language: [{"texts", "language", "sentences", "rate"}]."""
    corpora = []
    for suffix, code in WMT_LANGUAGES.items():
        path = data / "wmt_newstest" / f"newstest2013.{suffix}"
        if path.is_file():
            corpora.append((f"WMT {path.name}", code, path.read_text(encoding="utf-8").splitlines()))
    for prefix, code in UD_LANGUAGES.items():
        for path in sorted((data / "ud").glob(f"{prefix}-*.conllu")):
            lines = path.read_text(encoding="utf-8").splitlines()
            corpora.append((f"UD {path.name}", code, [ln.removeprefix("# text = ") for ln in lines if ln.startswith("# text = ")]))
    return [
        {"texts": name, "language": code, "sentences": len(sentences),
         "rate": round(sum(classify(s, code) == "target" for s in sentences) / len(sentences), 4)}
        for name, code, sentences in corpora
    ]  # fmt: skip
