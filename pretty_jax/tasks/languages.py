"""The language table: codes in the three styles users meet (Flores-101 "zho_simpl",
Flores-200 "zho_Hans", ISO 639-1 "zh"), English names for prompts, scripts and the
sacrebleu tokenizer for BLEU; plus the Unicode-aware word splitter and the stop-word
lists that tell Latin- and Cyrillic-script languages apart (used by metrics.py).

The canonical code is the Flores-101 one. ISO "zh" means Simplified Chinese; Traditional
Chinese is reached through "zho_trad" / "zho_Hant".
"""

from __future__ import annotations

import dataclasses
import itertools
import unicodedata
from typing import Sequence

from pretty_jax.core.errors import UserError


@dataclasses.dataclass(frozen=True)
class Language:
    """code: Flores-101 code (canonical); flores200: Flores-200 code; iso639_1: two
    letters; name: English name used in prompts; script: ISO 15924 code ("Jpan" = kanji
    with kana, "Hans"/"Hant" = simplified/traditional Han); bleu_tokenizer: sacrebleu's
    `tokenize` for BLEU on this target language."""

    code: str
    flores200: str
    iso639_1: str
    name: str
    script: str
    bleu_tokenizer: str = "13a"


# Thai is written without spaces between words and sacrebleu has no Thai word
# tokenizer: its BLEU is over characters (the signature says tok:char); spBLEU is the
# comparable number.
LANGUAGES: tuple[Language, ...] = (
    Language("eng", "eng_Latn", "en", "English", "Latn"),
    Language("zho_simpl", "zho_Hans", "zh", "Chinese", "Hans", "zh"),
    Language("zho_trad", "zho_Hant", "zh", "Traditional Chinese", "Hant", "zh"),
    Language("jpn", "jpn_Jpan", "ja", "Japanese", "Jpan", "ja-mecab"),
    Language("kor", "kor_Hang", "ko", "Korean", "Hang", "ko-mecab"),
    Language("deu", "deu_Latn", "de", "German", "Latn"),
    Language("fra", "fra_Latn", "fr", "French", "Latn"),
    Language("spa", "spa_Latn", "es", "Spanish", "Latn"),
    Language("ita", "ita_Latn", "it", "Italian", "Latn"),
    Language("por", "por_Latn", "pt", "Portuguese", "Latn"),
    Language("nld", "nld_Latn", "nl", "Dutch", "Latn"),
    Language("rus", "rus_Cyrl", "ru", "Russian", "Cyrl"),
    Language("ukr", "ukr_Cyrl", "uk", "Ukrainian", "Cyrl"),
    Language("pol", "pol_Latn", "pl", "Polish", "Latn"),
    Language("ces", "ces_Latn", "cs", "Czech", "Latn"),
    Language("ara", "arb_Arab", "ar", "Arabic", "Arab"),
    Language("hin", "hin_Deva", "hi", "Hindi", "Deva"),
    Language("vie", "vie_Latn", "vi", "Vietnamese", "Latn"),
    Language("tha", "tha_Thai", "th", "Thai", "Thai", "char"),
    Language("tur", "tur_Latn", "tr", "Turkish", "Latn"),
    Language("ind", "ind_Latn", "id", "Indonesian", "Latn"),
    Language("swe", "swe_Latn", "sv", "Swedish", "Latn"),
)


def _code_index() -> dict[str, Language]:
    """Lower-cased code of every style -> language; the first language listed wins a
    shared code ("zh" -> Simplified Chinese)."""
    index: dict[str, Language] = {}
    for language in LANGUAGES:
        for code in (language.code, language.flores200, language.iso639_1):
            index.setdefault(code.lower(), language)
    return index


_BY_CODE = _code_index()


def get_language(code: str) -> Language:
    """The language for a Flores-101, Flores-200 or ISO 639-1 code (case-insensitive)."""
    language = _BY_CODE.get(code.strip().lower())
    if language is None:
        known = ", ".join(f"{lang.code} ({lang.flores200}, {lang.iso639_1})" for lang in LANGUAGES)
        raise UserError(f"unknown language code {code!r}; known codes: {known}")
    return language


def register_language(language: Language, stop_words: Sequence[str] = ()) -> None:
    """Adds a language the table lacks (e.g. the demo's invented one), with the stop
    words that tell it from others of its script. Registering it again is a no-op."""
    global LANGUAGES
    if _BY_CODE.get(language.code.lower()) == language:
        return
    clashes = [c for c in (language.code, language.flores200, language.iso639_1) if c.lower() in _BY_CODE]
    if clashes:
        raise UserError(f"cannot register {language.name}: codes {', '.join(clashes)} are taken")
    LANGUAGES = LANGUAGES + (language,)
    for code in (language.code, language.flores200, language.iso639_1):
        _BY_CODE[code.lower()] = language
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


# Very common words, for telling apart languages that share a script (metrics.py).
# Lower case; a word may appear in several lists.
STOP_WORDS: dict[str, frozenset[str]] = {
    "eng": frozenset(
        "the of and to in is that for it was on with as are be by at this from or have an they which "
        "but not were his has had he their been also its who will would can more there when than "
        "into about after".split()
    ),
    "deu": frozenset(
        "der die und in den von zu das mit sich des auf für ist im dem nicht ein eine als auch es an "
        "werden aus er hat dass sie nach wird bei einer um am sind noch wie einem über einen so zum "
        "war haben nur oder aber vor zur bis mehr durch man sein wurde sei".split()
    ),
    "fra": frozenset(
        "le la les de des et est un une du en que qui dans pour pas sur au il ne se par plus ce sont "
        "avec son sa ses aux elle ou mais été cette ont comme nous leur être était a".split()
    ),
    "spa": frozenset(
        "el la los las de del y que en un una es por con para se no su sus al lo como más pero fue "
        "este esta ha son también era muy sobre entre desde hasta cuando donde porque ya está han".split()
    ),
    "ita": frozenset(
        "il lo la i gli le di del della dei delle e è che un una in per con non si da al alla nel "
        "nella sono come più ma anche questo questa ha era essere stato loro dopo tra fra".split()
    ),
    "por": frozenset(
        "o a os as de do da dos das e é que um uma em no na nos nas para com não se por pelo pela "
        "mais como mas foi ao seu sua são também ele ela isso este esta está ou muito já".split()
    ),
    "nld": frozenset(
        "de het een en van in is dat op te zijn voor met die niet aan er om ook als dan maar bij of "
        "uit nog wordt door naar worden kan was hij ze werd tot heeft over meer deze wel".split()
    ),
    "pol": frozenset(
        "i w z na się nie do że to jest o jak a od po za przez oraz jego jej ich był była było są "
        "przy dla tak ale czy co który która które tylko także już tym ten ta".split()
    ),
    "ces": frozenset(
        "a v se na je že s z do o to ve k i jako pro by jsou byl byla bylo ale po od za který která "
        "které také jeho jejich už podle při tak aby být má jen".split()
    ),
    "vie": frozenset(
        "của và là các có được trong cho những một người không với này đã khi để từ đến về như cũng "
        "ở sẽ năm ra thì nhiều đó tại bị vào theo nhưng họ nó rất làm".split()
    ),
    "tur": frozenset(
        "ve bir bu da de için ile olarak olan çok daha en ne gibi ama kadar sonra her o şey değil var "
        "yok olduğu ki mi veya ise göre tarafından ancak büyük ilk iki yeni".split()
    ),
    "ind": frozenset(
        "yang dan di ini itu dengan untuk dari dalam tidak akan pada juga ke karena ada adalah oleh "
        "atau mereka sebagai telah bisa saat kami kita lebih tersebut seperti sudah hanya namun bahwa "
        "para secara setelah".split()
    ),
    "swe": frozenset(
        "och i att det som en på är av för med till den har de inte om ett han men var jag sig från "
        "vi så kan när efter hade eller också blev detta sina sin under vid bara".split()
    ),
    "rus": frozenset(
        "и в не на что с по как это он она они к но из у за от о для было был была были так же также "
        "его ее её который которые только уже при или бы еще ещё мы вы чтобы этот".split()
    ),
    "ukr": frozenset(
        "і й в у не на що з із до як це він вона вони але за від про для було був була були так "
        "також його її який які тільки вже при або б ще ми ви щоб цей та".split()
    ),
}
