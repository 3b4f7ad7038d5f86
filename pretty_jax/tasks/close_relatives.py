"""Close relatives: languages so near each other in writing that a language identifier
confuses them, and an output in one when the other was asked for is neither plainly on
target nor plainly off target. The measure reports such an output as "close relative"
(`close_relative_rate`), never as on target and never as off target.

Groups (ISO 639-3 codes; the Flores-101 code where it differs is matched too):

| group | why |
| --- | --- |
| bos hrv srp hbs cnr | Bosnian, Croatian, Serbian, Montenegrin: one pluricentric language (Serbo-Croatian, "hbs") |
| zsm msa ind | Standard Malay ("msa" in Flores-101) and Indonesian: standard forms of one Malay language |
| glg por | Galician and Portuguese: one medieval language, close spelling |
| glg spa | Galician and Spanish: close vocabulary, Spanish-like spelling of Galician |
| ast spa ext | Asturian, Spanish, Extremaduran: Iberian Romance, Asturian texts are mostly told as Spanish |
| afr nld | Afrikaans, a daughter language of Dutch |
| nld vls zea lim | Dutch and its regional written languages (West Flemish, Zeelandic, Limburgish) |
| oci cat | Occitan and Catalan: Occitano-Romance |
| nob nno dan | Norwegian Bokmål and Nynorsk, Danish: Bokmål grew out of written Danish |
| dan nor | Danish and Norwegian ("nor", the macrolanguage, where an identifier does not tell Bokmål from Nynorsk: on target for both) |
| ces slk | Czech and Slovak: mutually intelligible |
| bul mkd | Bulgarian and Macedonian: a dialect continuum |
| zul xho ssw nbl | Zulu, Xhosa, Swati, Southern Ndebele: the Nguni languages |

Simplified and Traditional Chinese are one language to the identifiers ("zho"): both
targets count either as on target (the script rules do not tell the two apart).
"""

from __future__ import annotations

import functools
from typing import Literal

import iso639

from pretty_jax.tasks.languages import Language

GROUPS: tuple[frozenset[str], ...] = tuple(
    frozenset(group.split())
    for group in (
        "bos hrv srp hbs cnr", "zsm msa ind", "glg por", "glg spa", "ast spa ext", "afr nld", "nld vls zea lim",
        "oci cat", "nob nno dan", "dan nor", "ces slk", "bul mkd", "zul xho ssw nbl",
    )
)  # fmt: skip

Verdict = Literal["target", "close relative", "other"]


def _own_codes(language: Language) -> frozenset[str]:
    """The ISO 639-3 code of the language and its Flores-101 code ("zsm", "msa")."""
    return frozenset({language.iso639_3, language.code[:3]})


@functools.cache
def relatives(language: Language) -> frozenset[str]:
    """ISO 639-3 codes of the close relatives of `language` (empty for most)."""
    own = _own_codes(language)
    return frozenset(code for group in GROUPS if own & group for code in group) - own


@functools.cache
def _macrolanguage(iso639_3: str) -> str | None:
    try:
        return iso639.Language.from_part3(iso639_3).macrolanguage or None
    except iso639.LanguageNotFoundError:
        return None


def verdict(code: str | None, language: Language) -> Verdict:
    """What an identifier's answer (ISO 639-3 `code`, None for no answer) says of a text
    meant to be in `language`: its own code is on target; a close relative's code is
    "close relative" (checked before macrolanguages: Malay "msa" for Indonesian); a
    macrolanguage of the language or an individual language of it ("swa" for Swahili
    "swh", "arb" for Arabic "ara") is on target; anything else is "other"."""
    if code is None:
        return "other"
    own = _own_codes(language)
    if code in own:
        return "target"
    if code in relatives(language):
        return "close relative"
    if code == _macrolanguage(language.iso639_3) or _macrolanguage(code) in own:
        return "target"
    return "other"
