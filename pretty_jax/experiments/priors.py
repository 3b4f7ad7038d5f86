"""Prior tokens: where they come from and how they become ids after the prompt.

Kinds (the paper's):
  none        no prior: the plain foundation model
  sft         the first k tokens (or words) of the SFT model's output
  refined     the first k words of a smaller task-specific system's output (a file of
              {"id", "text"} or a model this project can load)
  dictionary  pseudo prior: a bilingual dictionary's translation of the first source
              word that has one (translation), or a tag lexicon's tags (POS)
  oracle      the first k tokens (or words) of the reference

Token-level priors are ids of the foundation's tokenizer. Word-level priors are text,
tokenised in context: ids(prompt + separator + text) minus ids(prompt). A SentencePiece
tokenizer (LLaMA) then yields "▁Bonjour" and a byte-level BPE tokenizer (BLOOM)
"ĠBonjour" — the tokens the model itself would produce after the prompt — where
tokenising "Bonjour" alone would give a word-start token for one and a mid-word token
for the other.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Mapping, Sequence

from pretty_jax.checkpoints.tokenizer import continuation_ids
from pretty_jax.core.errors import UserError
from pretty_jax.tasks import Example
from pretty_jax.tasks.dictionary import dictionary_prior_words, lexicon_prior_tags
from pretty_jax.tasks.languages import get_language

KINDS = ("none", "sft", "refined", "dictionary", "oracle")
TEXT_ONLY_KINDS = ("refined", "dictionary")
# Scripts written without spaces between words: a "word" of these is one character.
UNSPACED_SCRIPTS = ("Hans", "Hant", "Jpan", "Thai")


@dataclasses.dataclass(frozen=True)
class PriorSpec:
    """One prior setting: `kind`, k = `count` units of `unit` ("tokens" or "words")."""

    kind: str
    count: int = 0
    unit: str = "tokens"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise UserError(f"--priors: unknown prior {self.kind!r}; use {', '.join(KINDS)}")
        if self.kind in TEXT_ONLY_KINDS and self.unit != "words":
            raise UserError(f"the {self.kind} prior is text: give its size in words (unit=\"words\")")

    @property
    def key(self) -> str:
        """A file-name-safe name, e.g. "sft-1tok", "dictionary-1word", "none"."""
        if self.kind == "none" or self.count == 0:
            return "none"
        return f"{self.kind}-{self.count}{'tok' if self.unit == 'tokens' else 'word'}"

    @property
    def label(self) -> str:
        if self.kind == "none" or self.count == 0:
            return "foundation"
        unit = self.unit[:-1] if self.count == 1 else self.unit
        return f"foundation + {self.kind} prior ({self.count} {unit})"


@dataclasses.dataclass(frozen=True)
class Prior:
    """A built prior: its token ids, its text (word-level kinds) and whether the
    source had one (a dictionary can lack every word of a sentence)."""

    token_ids: tuple[int, ...]
    text: str
    found: bool


def first_words(text: str, count: int, lang: str) -> str:
    """The first `count` words of `text` (characters for unspaced scripts), with the
    original spacing and punctuation up to the end of the last one."""
    text = text.strip()
    if get_language(lang).script in UNSPACED_SCRIPTS:
        units = [m.end() for m in re.finditer(r"\S", text)]
    else:
        units = [m.end() for m in re.finditer(r"\S+", text)]
    if not units:
        return ""
    return text[: units[min(count, len(units)) - 1]]


@dataclasses.dataclass(frozen=True)
class PriorSources:
    """What the priors of one run draw from; missing pieces stay None.

    sft_tokens / sft_texts: the SFT model's outputs by example id.
    refined_texts: the refined system's outputs by example id.
    dictionary: MUSE dictionary (translation); lexicon: word -> UPOS tag (POS).
    """

    sft_tokens: Mapping[str, Sequence[int]] | None = None
    sft_texts: Mapping[str, str] | None = None
    refined_texts: Mapping[str, str] | None = None
    dictionary: Mapping[str, Sequence[str]] | None = None
    lexicon: Mapping[str, str] | None = None


def _prior_text(spec: PriorSpec, example: Example, sources: PriorSources, target_lang: str) -> str | None:
    k = spec.count
    if spec.kind == "sft":
        return first_words(sources.sft_texts[example.id], k, target_lang)
    if spec.kind == "oracle":
        return first_words(example.reference, k, target_lang)
    if spec.kind == "refined":
        return first_words(sources.refined_texts.get(example.id, ""), k, target_lang)
    if sources.lexicon is not None:
        return lexicon_prior_tags(example.words, sources.lexicon, k)
    return dictionary_prior_words(example.source, sources.dictionary, k)


def build_prior(
    spec: PriorSpec,
    example: Example,
    prompt: str,
    tokenizer,
    sources: PriorSources,
    target_lang: str,
    separator: str = " ",
) -> Prior:
    """The prior of `spec` for one example that follows `prompt`."""
    if spec.key == "none":
        return Prior((), "", True)
    if spec.unit == "tokens":
        if spec.kind == "sft":
            ids = list(sources.sft_tokens[example.id])[: spec.count]
        else:  # oracle
            ids = continuation_ids(tokenizer, prompt, example.reference, separator)[: spec.count]
        return Prior(tuple(ids), tokenizer.decode(ids), bool(ids))
    text = _prior_text(spec, example, sources, target_lang)
    if not text:
        return Prior((), "", False)
    return Prior(tuple(continuation_ids(tokenizer, prompt, text, separator)), text, True)
