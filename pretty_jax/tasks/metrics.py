"""Scores of the three tasks and the target-language rate.

- Translation: sacrebleu BLEU (tokenizer of the target language, see languages.py),
  chrF++, and spBLEU when a local Flores SentencePiece model is given.
- Summarisation: ROUGE-1/2/L F1, implemented here: characters for Chinese, Japanese,
  Korean and Thai, lower-cased words elsewhere; corpus score = mean of per-example F1.
- POS: accuracy over gold words.
- Target-language rate: the share of outputs written in the requested language (and in
  a close relative of it), with the measure's reliability for that language
  (target_language.py); source-language rate: the share in the source language or
  copying the source (source_language.py). Both re-exported here.

Scores are on sacrebleu's 0-100 scale except `pos_accuracy` and
the language rates, which are fractions in [0, 1].
"""

from __future__ import annotations

import collections
import unicodedata
from pathlib import Path
from typing import Sequence

from sacrebleu.metrics import BLEU, CHRF

from pretty_jax.core.errors import MissingDependencyError, UserError
from pretty_jax.tasks.languages import get_language, split_words
from pretty_jax.tasks.source_language import is_copy, source_language_rate  # noqa: F401  (public names)
from pretty_jax.tasks.target_language import (  # noqa: F401  (the metrics' public names)
    classify,
    is_in_language,
    target_language_rate,
    target_language_scores,
    target_language_signature,
)
from pretty_jax.tasks.writing_systems import text_script  # noqa: F401

# sacrebleu tokenizers that need an extra (`pip install 'sacrebleu[ja]'`).
_TOKENIZER_EXTRAS = {"ja-mecab": "ja", "ko-mecab": "ko"}
# ROUGE over characters for languages written without spaces between words (and Korean,
# whose space-separated units carry particles).
_CHARACTER_ROUGE = {"zh", "ja", "ko", "th"}


def _check_aligned(hypotheses: Sequence[object], references: Sequence[object]) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    if not references:
        raise ValueError("nothing to score: no references")


# --- translation --------------------------------------------------------------------


def translation_scores(
    hypotheses: Sequence[str], references: Sequence[str], target_lang: str, spm_model: Path | None = None
) -> dict[str, float | str]:
    """Corpus BLEU, chrF++ (and spBLEU with `spm_model`) of aligned strings.

    Returns {"bleu", "bleu_signature", "chrf", "chrf_signature"} plus
    {"spbleu", "spbleu_signature"} when `spm_model` (a local SentencePiece model, e.g.
    the Flores-101 `sacrebleu_tokenizer_spm.model`) is given.
    """
    _check_aligned(hypotheses, references)
    hypotheses, references = list(hypotheses), list(references)
    bleu = bleu_metric(target_lang)
    chrf = CHRF(word_order=2)
    scores: dict[str, float | str] = {
        "bleu": bleu.corpus_score(hypotheses, [references]).score,
        "bleu_signature": str(bleu.get_signature()),
        "chrf": chrf.corpus_score(hypotheses, [references]).score,
        "chrf_signature": str(chrf.get_signature()),
    }
    if spm_model is not None:
        scores |= spbleu_scores(hypotheses, references, spm_model)
    return scores


def bleu_metric(target_lang: str) -> BLEU:
    """sacrebleu's BLEU with the tokenizer of `target_lang` (languages.py)."""
    language = get_language(target_lang)
    tokenizer = language.bleu_tokenizer
    try:
        return BLEU(tokenize=tokenizer)
    except RuntimeError:  # sacrebleu's message when MeCab and its dictionary are missing
        if tokenizer not in _TOKENIZER_EXTRAS:
            raise
        raise MissingDependencyError(
            f"BLEU on {language.name} uses sacrebleu's {tokenizer} tokenizer, which needs extra "
            f"packages: pip install 'sacrebleu[{_TOKENIZER_EXTRAS[tokenizer]}]'"
        ) from None


def spbleu_scores(hypotheses: list[str], references: list[str], spm_model: Path) -> dict[str, float | str]:
    """BLEU over the SentencePiece pieces of a local model: {"spbleu", "spbleu_signature"}.

    Same as sacrebleu's "flores101" / "flores200" tokenizers (which download their model):
    each right-stripped segment becomes its pieces joined by spaces, then BLEU runs with
    tokenize="none".
    """
    spm_model = Path(spm_model)
    if not spm_model.is_file():
        raise UserError(
            f"SentencePiece model {spm_model} does not exist; spBLEU needs a local Flores "
            "SentencePiece model (offline runs cannot download one): give the path of a copy "
            "of flores101's sacrebleu_tokenizer_spm.model or flores200_sacrebleu_tokenizer_spm.model"
        )
    try:
        import sentencepiece
    except ImportError:
        raise MissingDependencyError("spBLEU needs the sentencepiece package: pip install sentencepiece") from None
    try:
        processor = sentencepiece.SentencePieceProcessor(model_file=str(spm_model))
    except (OSError, RuntimeError) as e:
        raise UserError(f"{spm_model}: not a readable SentencePiece model ({e})") from None

    def pieces(text: str) -> str:
        return " ".join(processor.encode(text.rstrip(), out_type=str))

    bleu = BLEU(tokenize="none")
    score = bleu.corpus_score([pieces(h) for h in hypotheses], [[pieces(r) for r in references]])
    return {"spbleu": score.score, "spbleu_signature": f"{bleu.get_signature()}|spm:{spm_model.name}"}


# --- summarisation ------------------------------------------------------------------


def rouge_tokens(text: str, lang: str) -> list[str]:
    """ROUGE units: characters (a base character with its combining marks) for zh, ja,
    ko, th; lower-cased words (`languages.split_words`) otherwise."""
    words = split_words(text.lower())
    if get_language(lang).iso639_1 not in _CHARACTER_ROUGE:
        return words
    characters: list[str] = []
    for word in words:
        for position, char in enumerate(word):
            if position and unicodedata.category(char).startswith("M"):
                characters[-1] += char
            else:
                characters.append(char)
    return characters


def rouge_scores(hypotheses: Sequence[str], references: Sequence[str], lang: str) -> dict[str, float]:
    """{"rouge1", "rouge2", "rougeL"}: mean over examples of the F1 (x100)."""
    _check_aligned(hypotheses, references)
    per_example = rouge_example_scores(hypotheses, references, lang)
    return {name: sum(scores[name] for scores in per_example) / len(references) for name in ROUGE_METRICS}


ROUGE_METRICS = ("rouge1", "rouge2", "rougeL")


def rouge_example_scores(hypotheses: Sequence[str], references: Sequence[str], lang: str) -> list[dict[str, float]]:
    """Per example {"rouge1", "rouge2", "rougeL"}: its F1 (x100); their means are the corpus scores."""
    scores = []
    for hypothesis, reference in zip(hypotheses, references, strict=True):
        hyp, ref = rouge_tokens(hypothesis, lang), rouge_tokens(reference, lang)
        f1 = (_rouge_n(hyp, ref, 1), _rouge_n(hyp, ref, 2), _f1(_lcs_length(hyp, ref), len(hyp), len(ref)))
        scores.append({name: 100 * value for name, value in zip(ROUGE_METRICS, f1)})
    return scores


def _ngrams(tokens: list[str], n: int) -> collections.Counter[tuple[str, ...]]:
    return collections.Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _rouge_n(hyp: list[str], ref: list[str], n: int) -> float:
    hyp_ngrams, ref_ngrams = _ngrams(hyp, n), _ngrams(ref, n)
    overlap = sum((hyp_ngrams & ref_ngrams).values())
    return _f1(overlap, sum(hyp_ngrams.values()), sum(ref_ngrams.values()))


def _f1(overlap: int, hyp_total: int, ref_total: int) -> float:
    if overlap == 0:
        return 0.0
    precision, recall = overlap / hyp_total, overlap / ref_total
    return 2 * precision * recall / (precision + recall)


def _lcs_length(a: list[str], b: list[str]) -> int:
    """Longest common subsequence, O(len(a) * len(b)) time, one row of memory."""
    row = [0] * (len(b) + 1)  # row[j]: LCS of the a-prefix read so far and b[:j]
    for x in a:
        diagonal = 0  # the previous row's row[j - 1]
        for j, y in enumerate(b, start=1):
            above = row[j]
            row[j] = diagonal + 1 if x == y else max(above, row[j - 1])
            diagonal = above
    return row[-1]


# --- POS ----------------------------------------------------------------------------


def pos_accuracy(predicted: Sequence[Sequence[str]], gold: Sequence[Sequence[str]]) -> dict[str, float]:
    """Per-position tag accuracy over all gold words.

    A missing prediction (the output is shorter than the sentence) counts as an error;
    predictions past the sentence's end are ignored but counted.
    Returns {"pos_accuracy": correct / gold words, "pos_missing_tags", "pos_extra_tags"}.
    """
    _check_aligned(predicted, gold)
    correct = missing = extra = total = 0
    for predicted_tags, gold_tags in zip(predicted, gold):
        correct += sum(p == g for p, g in zip(predicted_tags, gold_tags))
        missing += max(0, len(gold_tags) - len(predicted_tags))
        extra += max(0, len(predicted_tags) - len(gold_tags))
        total += len(gold_tags)
    if total == 0:
        raise ValueError("nothing to score: the gold sentences have no words")
    return {"pos_accuracy": correct / total, "pos_missing_tags": missing, "pos_extra_tags": extra}
