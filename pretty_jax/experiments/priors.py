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
from pretty_jax.core.errors import UserError, check_choice
from pretty_jax.tasks import Example
from pretty_jax.tasks.dictionary import dictionary_prior_words, lexicon_prior_tags
from pretty_jax.tasks.languages import get_language

KINDS = ("none", "sft", "refined", "dictionary", "oracle")
TEXT_ONLY_KINDS = ("refined", "dictionary")
# Scripts written without spaces between words: a "word" of these is one character.
UNSPACED_SCRIPTS = ("Hans", "Hant", "Jpan", "Thai")


CHOICES = ("first", "foundation")


@dataclasses.dataclass(frozen=True)
class PriorSpec:
    """One prior setting: `kind`, k = `count` units of `unit` ("tokens" or "words").

    Settings the foundation model judges before it decodes (prior_scoring.py):
      choice: "first" takes a dictionary's first-listed translation; "foundation" the
        one the foundation finds most probable after the prompt (dictionary priors).
      min_logprob: drop the prior of an example when the mean log-prob per token the
        foundation gives it after the prompt is below this (the example decodes with
        no prior).
      adaptive_kl: SFT token priors only: `count` is a maximum; each example takes the
        fewest of the SFT output's first tokens after which KL(SFT||LM) of the next
        token is below this.
    """

    kind: str
    count: int = 0
    unit: str = "tokens"
    choice: str = "first"
    min_logprob: float | None = None
    adaptive_kl: float | None = None

    def __post_init__(self):
        check_choice("--priors", self.kind, KINDS)
        if self.kind in TEXT_ONLY_KINDS and self.unit != "words":
            raise UserError(f"the {self.kind} prior is text: give its size in words (unit=\"words\")")
        check_choice("--prior_choice", self.choice, CHOICES)
        if self.choice == "foundation" and self.kind != "dictionary":
            raise UserError("--prior_choice=foundation chooses among a dictionary's translations: "
                            f"it does not apply to the {self.kind} prior")
        if self.adaptive_kl is not None and (self.kind, self.unit) != ("sft", "tokens"):
            raise UserError("--adaptive_kl adds SFT prior tokens one at a time: it needs token-level SFT priors "
                            "(--priors=sft without --prior_word_count)")
        if self.adaptive_kl is not None and self.adaptive_kl <= 0:
            raise UserError(f"--adaptive_kl={self.adaptive_kl:g}: give a KL threshold > 0 (nats)")
        if self.adaptive_kl is not None and self.min_logprob is not None:
            raise UserError("an adaptive SFT prior is not gated: --prior_min_logprob applies to fixed-size priors")
        if self.min_logprob is not None and self.key == "none":
            raise UserError("--prior_min_logprob gates a prior: the plain foundation has none")

    @property
    def scored(self) -> bool:
        """Whether the foundation (or the SFT model) judges this prior before decoding."""
        return self.choice != "first" or self.min_logprob is not None or self.adaptive_kl is not None

    @property
    def key(self) -> str:
        """A file-name-safe name, e.g. "sft-1tok", "dictionary-1word-chosen-gated-3",
        "sft-kl0.5-max3tok", "none"."""
        if self.kind == "none" or self.count == 0:
            return "none"
        if self.adaptive_kl is not None:
            return f"sft-kl{self.adaptive_kl:g}-max{self.count}tok"
        key = f"{self.kind}-{self.count}{'tok' if self.unit == 'tokens' else 'word'}"
        if self.choice == "foundation":
            key += "-chosen"
        if self.min_logprob is not None:
            key += f"-gated{self.min_logprob:g}"
        return key

    @property
    def label(self) -> str:
        if self.kind == "none" or self.count == 0:
            return "foundation"
        unit = self.unit[:-1] if self.count == 1 else self.unit
        if self.adaptive_kl is not None:
            return f"foundation + sft prior (adaptive, up to {self.count} {unit}, KL < {self.adaptive_kl:g})"
        details = [f"{self.count} {unit}"]
        if self.choice == "foundation":
            details.append("foundation's choice")
        if self.min_logprob is not None:
            details.append(f"gated at log-prob {self.min_logprob:g}")
        return f"foundation + {self.kind} prior ({', '.join(details)})"

    def as_json(self) -> dict:
        """The spec as results.json and run_config.json record it (settings left at
        their defaults are omitted, so records of plain priors keep their form)."""
        record = dataclasses.asdict(self)
        for field in ("choice", "min_logprob", "adaptive_kl"):
            if record[field] == PriorSpec.__dataclass_fields__[field].default:
                del record[field]
        return record


def experiment_systems(
    priors: Sequence[PriorSpec],
    choices: Sequence[str] = ("first",),
    min_logprob: float | None = None,
    adaptive_kl: float | None = None,
    adaptive_max_tokens: int = 3,
) -> list[PriorSpec]:
    """The foundation systems of --priors with the scored variants next to the plain
    ones: each dictionary prior once per choice rule, then every prior (beyond none)
    also gated at `min_logprob`, then the adaptive SFT prior."""
    systems = []
    for spec in priors:
        variants = [spec]
        if spec.kind == "dictionary":
            variants = [dataclasses.replace(spec, choice=choice) for choice in choices]
        if min_logprob is not None and spec.key != "none":
            variants += [dataclasses.replace(v, min_logprob=min_logprob) for v in variants]
        systems += variants
    if adaptive_kl is not None:
        systems.append(PriorSpec("sft", adaptive_max_tokens, "tokens", adaptive_kl=adaptive_kl))
    return systems


@dataclasses.dataclass(frozen=True)
class Prior:
    """A built prior: its token ids, its text (word-level kinds), whether the
    source had one (a dictionary can lack every word of a sentence) and whether a
    gate dropped it (then it has no tokens)."""

    token_ids: tuple[int, ...]
    text: str
    found: bool
    dropped: bool = False


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
