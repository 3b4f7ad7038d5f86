"""Languages by the codes users meet: Flores-101 ("swh", "zho_simpl"), Flores-200 /
Flores+ ("swh_Latn", "zho_Hans"), ISO 639-1 ("sw"); with the English name for prompts,
the ISO 639-1 code (MUSE file names), the script and sacrebleu's tokenizer for BLEU. Also
the Unicode-aware word splitter used by the metrics.

Nothing here is typed by hand but the datasets' own file names: names and usual scripts
come from CLDR through `langcodes` (+ `language-data`), ISO 639 codes and the
individual-language -> macrolanguage links (Swahili "swh" is part of "swa", whose ISO
639-1 code is "sw") from `python-iso639`. The canonical code is the Flores-101 one where
the language is in Flores-101, the Flores-200 code otherwise; ISO "zh" means Simplified
Chinese.

A program may register a language the libraries do not know (the demo's invented Varic),
with stop words that the target-language metric uses for it (`register_language`).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import itertools
import re
import unicodedata
from typing import Sequence

import iso639
import langcodes
from langcodes.data_dicts import LIKELY_SUBTAGS

from pretty_jax.core.errors import UserError

# Flores-101's file names (flores101_dataset/devtest/<code>.devtest), in its README's order.
FLORES101_CODES: tuple[str, ...] = tuple(
    """afr amh ara hye asm ast azj bel ben bos bul mya cat ceb zho_simpl zho_trad hrv ces dan nld
    eng est tgl fin fra ful glg lug kat deu ell guj hau heb hin hun isl ibo ind gle ita jpn jav kea
    kam kan kaz khm kor kir lao lav lin lit luo ltz mkd msa mal mlt mri mar mon npi nso nob nya oci
    ory orm pus fas pol por pan ron rus srp sna snd slk slv som ckb spa swh swe tgk tam tel tha tur
    ukr umb urd uzb vie cym wol xho yor zul""".split()
)
# The Flores-200 file that continues a Flores-101 one, where it is not "<code>_<usual
# script>" (Flores-200 names individual languages where Flores-101 named macrolanguages).
_FLORES200_OF = {
    "ara": "arb_Arab", "fas": "pes_Arab", "ful": "fuv_Latn", "kor": "kor_Hang", "lav": "lvs_Latn",
    "mon": "khk_Cyrl", "msa": "zsm_Latn", "orm": "gaz_Latn", "pus": "pbt_Arab", "uzb": "uzn_Latn",
    "zho_simpl": "zho_Hans", "zho_trad": "zho_Hant",
}  # fmt: skip
# The one prompt name kept from before the names came from CLDR ("Chinese (Traditional)").
_NAME_OF = {"zho_trad": "Traditional Chinese"}
# Scripts that CLDR and Flores spell differently: Korean is "Kore" (Hangul + Han) in CLDR.
_SAME_SCRIPT = {"Kore": "Hang"}
# sacrebleu tokenizers by script or language; Thai, Lao, Khmer and Burmese are written
# without spaces between words and sacrebleu has no word tokenizer for them: their BLEU
# is over characters (the signature says tok:char); spBLEU is the comparable number.
_BLEU_TOKENIZER_OF_SCRIPT = {"Hans": "zh", "Hant": "zh", "Jpan": "ja-mecab", "Thai": "char", "Laoo": "char",
                             "Khmr": "char", "Mymr": "char"}  # fmt: skip
_BLEU_TOKENIZER_OF_LANGUAGE = {"kor": "ko-mecab"}
_FLORES200_CODE = re.compile(r"^([a-z]{3})_([A-Z][a-z]{3})$")


@dataclasses.dataclass(frozen=True)
class Language:
    """code: canonical code (Flores-101 where the language is in it, else Flores-200);
    flores200: Flores-200 code "<ISO 639-3>_<ISO 15924>"; iso639_1: two letters, its
    macrolanguage's where it has none itself, "" where neither has one; name: English
    name used in prompts; script: ISO 15924 code ("Jpan" = kanji with kana,
    "Hans"/"Hant" = simplified/traditional Han); bleu_tokenizer: sacrebleu's `tokenize`
    for BLEU on this target language."""

    code: str
    flores200: str
    iso639_1: str
    name: str
    script: str
    bleu_tokenizer: str = "13a"

    @property
    def iso639_3(self) -> str:
        """The ISO 639-3 code of the Flores-200 code ("arb" for Flores-101's "ara")."""
        return self.flores200.split("_", 1)[0]


# Languages registered by programs (the demo's Varic), by lower-cased code of each style.
_REGISTERED: dict[str, Language] = {}
# Registered languages' stop words, by canonical code (metrics.py uses them).
STOP_WORDS: dict[str, frozenset[str]] = {}


def usual_script(iso639_code: str) -> str | None:
    """The script CLDR's likely-subtags data gives the language, or its macrolanguage
    (Flores spelling: "Hang" for Korean); None where neither is listed."""
    for code in (iso639_code, _macrolanguage(iso639_code)):
        if code is None:
            continue
        likely = LIKELY_SUBTAGS.get(langcodes.standardize_tag(code))
        if likely is not None:
            script = langcodes.Language.get(likely).script
            return _SAME_SCRIPT.get(script, script)
    return None


def _iso(code: str) -> iso639.Language | None:
    try:
        return iso639.Language.match(code)
    except iso639.LanguageNotFoundError:
        return None


def _macrolanguage(iso639_3: str) -> str | None:
    language = _iso(iso639_3)
    return language.macrolanguage if language is not None and language.macrolanguage else None


def _iso639_1(iso639_3: str) -> str:
    for code in (iso639_3, _macrolanguage(iso639_3)):
        language = _iso(code) if code else None
        if language is not None and language.part1:
            return language.part1
    return ""


def _english_name(iso639_3: str, script: str) -> str:
    """CLDR's English name, without ISO's "(individual language)"; the script is named
    too where CLDR knows another as the language's usual one ("Acehnese (Arabic)")."""
    usual = usual_script(iso639_3)
    tag = iso639_3 if usual in (None, script) else f"{iso639_3}-{script}"
    name = langcodes.Language.get(tag).display_name("en")
    return name.replace(" (individual language)", "").replace(" (macrolanguage)", "")


def _from_flores200(code: str, flores200: str) -> Language:
    """The language of `flores200`, named after `code`'s ISO 639 code (Flores-101's
    macrolanguage "ara" is "Arabic", its Flores-200 file "arb_Arab" "Standard Arabic")."""
    iso639_3, script = flores200.split("_")
    return Language(
        code=code,
        flores200=flores200,
        iso639_1=_iso639_1(iso639_3),
        name=_NAME_OF.get(code) or _english_name(code[:3], script),
        script=script,
        bleu_tokenizer=_BLEU_TOKENIZER_OF_LANGUAGE.get(iso639_3) or _BLEU_TOKENIZER_OF_SCRIPT.get(script, "13a"),
    )


@functools.cache
def _flores101_by_flores200() -> dict[str, str]:
    """Lower-cased Flores-200 code -> the Flores-101 code it continues."""
    return {(_FLORES200_OF.get(code) or f"{code}_{usual_script(code)}").lower(): code for code in FLORES101_CODES}


@functools.cache
def _flores101_language(code: str) -> Language:
    return _from_flores200(code, _FLORES200_OF.get(code) or f"{code}_{usual_script(code)}")


def flores101_languages() -> list[Language]:
    """Every Flores-101 language, in its README's order."""
    return [_flores101_language(code) for code in FLORES101_CODES]


@functools.cache
def _resolve(code: str) -> Language | None:
    """`code` (stripped, lower-cased) in any style, or None."""
    if code in _REGISTERED:
        return _REGISTERED[code]
    if code in FLORES101_CODES:
        return _flores101_language(code)
    if code in _flores101_by_flores200():
        return _flores101_language(_flores101_by_flores200()[code])
    if "_" in code:
        return _from_flores200_code(code)
    if len(code) == 2:
        return _from_iso639_1(code)
    return None


def _from_flores200_code(code: str) -> Language | None:
    iso639_3, _, script = code.partition("_")
    flores200 = f"{iso639_3}_{script.title()}"
    language = _iso(iso639_3)
    if not _FLORES200_CODE.match(flores200) or language is None or language.part3 != iso639_3:
        return None
    if not langcodes.tag_is_valid(f"{iso639_3}-{script.title()}"):
        return None
    return _from_flores200(flores200, flores200)


def _from_iso639_1(code: str) -> Language | None:
    """The first Flores-101 language of that ISO 639-1 code (its own or its
    macrolanguage's), else the Flores-200 code of the language in its usual script."""
    for flores200, flores101 in _flores101_by_flores200().items():
        if _iso639_1(flores200[:3]) == code:
            return _flores101_language(flores101)
    iso = _iso(code)
    script = usual_script(iso.part3) if iso is not None and iso.part1 == code else None
    return _from_flores200_code(f"{iso.part3}_{script}") if script else None


def get_language(code: str) -> Language:
    """The language for a Flores-101, Flores-200 / Flores+ or ISO 639-1 code
    (case-insensitive), or a registered one."""
    language = _resolve(code.strip().lower())
    if language is None:
        kinds = ("not a Flores-101 code, not a Flores-200 / Flores+ code (<ISO 639-3>_<ISO 15924 script>, e.g. "
                 "swh_Latn) and not an ISO 639-1 code")
        suggestion = _closest_language(code.strip())
        if suggestion is not None:
            raise UserError(f"unknown language code {code!r}: did you mean {suggestion.code} ({suggestion.name})? "
                            f"It is {kinds}")
        known = ", ".join(f"{lang.code} ({lang.flores200}, {lang.iso639_1})" for lang in flores101_languages())
        registered = "".join(f", {lang.code} ({lang.name})" for lang in dict.fromkeys(_REGISTERED.values()))
        raise UserError(f"unknown language code {code!r}: {kinds}; known Flores-101 codes: {known}{registered}")
    return language


def _closest_language(text: str) -> Language | None:
    """The language `text` most likely means: an English language name ("french"), another
    spelling of a code langcodes knows ("fre", "zh-CN"), or the nearest known code by
    spelling ("frn"); None when nothing is close."""
    try:
        found = langcodes.find(text)
    except LookupError:
        try:
            found = langcodes.Language.get(langcodes.standardize_tag(text))
        except ValueError:
            found = None
    if found is not None and found.language:
        try:
            found = found.maximize()  # the usual script: zh-TW is written in Hant
            language = _resolve(f"{found.to_alpha3()}_{found.script}".lower()) or _resolve(found.language)
        except LookupError:  # a tag langcodes parses but does not know ("qq")
            language = None
        if language is not None:
            return language
    codes = {lang.code: lang for lang in flores101_languages()} | dict(_REGISTERED)
    close = difflib.get_close_matches(text.lower(), list(codes), n=1, cutoff=0.75)
    return codes[close[0]] if close else None


def register_language(language: Language, stop_words: Sequence[str] = ()) -> None:
    """Adds a language the libraries lack (e.g. the demo's invented one), with the stop
    words that tell its texts from others of its script when the language identifier
    does not know it. Registering it again is a no-op."""
    codes = [c.lower() for c in (language.code, language.flores200, language.iso639_1) if c]
    if all(_REGISTERED.get(c) == language for c in codes):
        return
    clashes = [c for c in codes if c in _REGISTERED or _resolve(c) is not None]
    if clashes:
        raise UserError(f"cannot register {language.name}: codes {', '.join(clashes)} are taken")
    for code in codes:
        _REGISTERED[code] = language
    _resolve.cache_clear()
    if stop_words:
        STOP_WORDS[language.code] = frozenset(w.lower() for w in stop_words)


def is_word_char(char: str) -> bool:
    """A letter, digit or combining mark (Unicode categories L*, N*, M*)."""
    return unicodedata.category(char)[0] in "LNM"


def split_words(text: str) -> list[str]:
    """The words of `text`: maximal runs of letters, digits and combining marks.

    Like the regex `\\w+` but keeping combining vowel signs inside their word (Python's
    `\\w` splits "हिन्दी" at its matras) and treating "_" as punctuation. Everything else
    (spaces, punctuation, symbols) separates words. Scripts written without spaces
    (Chinese, Japanese, Thai) come out as whole runs, not words.
    """
    return ["".join(run) for is_word, run in itertools.groupby(text, is_word_char) if is_word]
