"""Scores equal sacrebleu's on the same strings, ROUGE equals hand-computed values, and
the target-language rate separates the real Flores references by language."""

from __future__ import annotations

import importlib.util
import re
import sys
import types
from pathlib import Path

import pytest
from sacrebleu.metrics import BLEU, CHRF

from pretty_jax.core.errors import MissingDependencyError, UserError
from pretty_jax.tasks import metrics
from pretty_jax.tasks.languages import get_language

FLORES = Path(__file__).resolve().parents[2] / "shared" / "data" / "flores101_devtest"


def _references(code: str, count: int | None = None) -> list[str]:
    path = FLORES / f"{code}.devtest"
    if not path.exists():
        pytest.skip(f"real sample data not found at {path}")
    return path.read_text(encoding="utf-8").splitlines()[:count]


def _degrade(sentences: list[str]) -> list[str]:
    """Hypotheses that share part of each reference: drop its last third."""
    return [s[: 2 * len(s) // 3] for s in sentences]


@pytest.mark.parametrize("code, tokenizer", [("zho_simpl", "zh"), ("deu", "13a"), ("fra", "13a")])
def test_translation_scores_equal_sacrebleu(code, tokenizer):
    references = _references(code, 200)
    hypotheses = _degrade(references)
    scores = metrics.translation_scores(hypotheses, references, code)
    bleu = BLEU(tokenize=tokenizer).corpus_score(hypotheses, [references])
    chrf = CHRF(word_order=2).corpus_score(hypotheses, [references])
    assert 10 < scores["bleu"] < 90
    assert scores["bleu"] == bleu.score and scores["chrf"] == chrf.score
    assert f"tok:{tokenizer}" in scores["bleu_signature"] and "nw:2" in scores["chrf_signature"]
    assert "spbleu" not in scores


def test_japanese_bleu_without_mecab_says_what_to_install():
    if importlib.util.find_spec("MeCab") and importlib.util.find_spec("ipadic"):
        pytest.skip("sacrebleu[ja] is installed here")
    with pytest.raises(MissingDependencyError, match=re.escape("pip install 'sacrebleu[ja]'")):
        metrics.translation_scores(["猫です"], ["猫です"], "jpn")


def test_spbleu_missing_model_names_the_path(tmp_path):
    model = tmp_path / "flores200_sacrebleu_tokenizer_spm.model"
    with pytest.raises(UserError) as error:
        metrics.translation_scores(["a"], ["a"], "eng", spm_model=model)
    assert f"SentencePiece model {model} does not exist" in str(error.value)
    assert "offline runs cannot download one" in str(error.value)


def test_spbleu_without_sentencepiece_says_what_to_install(tmp_path):
    if importlib.util.find_spec("sentencepiece"):
        pytest.skip("sentencepiece is installed here")
    model = tmp_path / "spm.model"
    model.write_bytes(b"model")
    with pytest.raises(MissingDependencyError, match="pip install sentencepiece"):
        metrics.translation_scores(["a"], ["a"], "eng", spm_model=model)


class _CharacterPieces:
    """Stands in for sentencepiece.SentencePieceProcessor: one piece per character."""

    def __init__(self, model_file: str):
        self.model_file = model_file

    def encode(self, text: str, out_type: type) -> list[str]:
        assert out_type is str
        return ["▁" if char == " " else char for char in text]


def test_spbleu_is_bleu_over_the_model_pieces(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sentencepiece", types.SimpleNamespace(SentencePieceProcessor=_CharacterPieces))
    model = tmp_path / "spm.model"
    model.write_bytes(b"model")
    references = _references("zho_simpl", 100)
    hypotheses = _degrade(references)
    scores = metrics.translation_scores(hypotheses, references, "zho_simpl", spm_model=model)

    def pieces(text: str) -> str:
        return " ".join(_CharacterPieces("").encode(text.rstrip(), out_type=str))

    direct = BLEU(tokenize="none").corpus_score([pieces(h) for h in hypotheses], [[pieces(r) for r in references]])
    assert scores["spbleu"] == direct.score and scores["spbleu"] != scores["bleu"]
    assert "tok:none" in scores["spbleu_signature"] and scores["spbleu_signature"].endswith("|spm:spm.model")


def test_misaligned_inputs_are_refused():
    with pytest.raises(ValueError, match="2 hypotheses for 1 references"):
        metrics.translation_scores(["a", "b"], ["a"], "eng")


def test_rouge_english_by_hand():
    hypotheses = ["The cat was found under the bed.", "Completely different."]
    references = ["The cat was under the bed!", "Nothing shared here"]
    # Example 1: hyp 7 words, ref 6; unigram overlap 6, bigram overlap 4 (of 6 and 5),
    # LCS 6. F1 = 2 * overlap / (hyp + ref). Example 2 scores 0.
    scores = metrics.rouge_scores(hypotheses, references, "eng")
    assert scores["rouge1"] == pytest.approx(100 * (12 / 13) / 2)
    assert scores["rouge2"] == pytest.approx(100 * (8 / 11) / 2)
    assert scores["rougeL"] == pytest.approx(100 * (12 / 13) / 2)


def test_rouge_chinese_by_hand():
    # 猫坐在垫子上 vs 猫在垫子上睡觉 (punctuation dropped): unigrams 5 of 6 and 7,
    # bigrams 3 (在垫 垫子 子上) of 5 and 6, LCS 猫在垫子上 = 5.
    scores = metrics.rouge_scores(["猫坐在垫子上。"], ["猫在垫子上睡觉。"], "zho_simpl")
    assert scores == pytest.approx({"rouge1": 100 * 10 / 13, "rouge2": 100 * 6 / 11, "rougeL": 100 * 10 / 13})


def test_rouge_tokens_keep_combining_marks_with_their_letters():
    assert metrics.rouge_tokens("हिन्दी भाषा", "hin") == ["हिन्दी", "भाषा"]
    assert metrics.rouge_tokens("กิน", "tha") == ["กิ", "น"]
    assert metrics.rouge_tokens("Don't STOP", "eng") == ["don", "t", "stop"]


def test_pos_accuracy_counts_missing_as_errors_and_extra_separately():
    scores = metrics.pos_accuracy([["DET", "NOUN"], ["VERB", "X", "X"]], [["DET", "VERB", "PUNCT"], ["VERB"]])
    assert scores == {"pos_accuracy": 2 / 4, "pos_missing_tags": 1, "pos_extra_tags": 2}


def test_target_language_rate_on_real_flores_references():
    chinese, german, english = _references("zho_simpl"), _references("deu"), _references("eng")
    assert metrics.target_language_rate(chinese, "eng") < 0.01
    assert metrics.target_language_rate(german, "fra") < 0.01
    assert metrics.target_language_rate(german, "eng") < 0.01
    assert metrics.target_language_rate(english, "eng") > 0.98
    for code in ("zho_simpl", "deu", "fra"):
        assert metrics.target_language_rate(_references(code), code) >= 0.98, code
        assert metrics.target_language_rate(english, code) <= 0.02, code
    assert metrics.target_language_rate(english, "zul") <= 0.02  # a language LID-176 lacks


@pytest.mark.parametrize("treebank, code", [("de_gsd", "deu"), ("fr_gsd", "fra"), ("zh_gsdsimp", "zho_simpl")])
def test_target_language_rate_on_real_ud_sentences(treebank, code):
    path = FLORES.parent / "ud" / f"{treebank}-ud-dev.conllu"
    if not path.exists():
        pytest.skip(f"real sample data not found at {path}")
    lines = path.read_text(encoding="utf-8").splitlines()
    sentences = [line.removeprefix("# text = ") for line in lines if line.startswith("# text = ")]
    assert len(sentences) > 400 and metrics.target_language_rate(sentences, code) >= 0.98


@pytest.mark.parametrize(
    "text, lang, expected",
    [
        ("", "eng", False),
        ("Das ist gut, und er weiß es.", "deu", True),
        ("Das ist gut, und er weiß es.", "eng", False),
        ("Guten Morgen, wie geht es Ihnen heute?", "eng", False),  # same script: the identifier decides
        ("Guten Morgen, wie geht es Ihnen heute?", "deu", True),
        ("Мы поехали в Москву на поезде вчера вечером.", "rus", True),
        ("Мы поехали в Москву на поезде вчера вечером.", "ukr", False),
        ("Rais wa Marekani alisema kwamba serikali yake itaendelea kusaidia nchi hiyo.", "swh", True),
        ("Rais wa Marekani alisema kwamba serikali yake itaendelea kusaidia nchi hiyo.", "eng", False),
        ("আমি প্রতিদিন সকালে ভাত খাই এবং চা পান করি।", "ben", True),  # a script the old table lacked
        ("আমি প্রতিদিন সকালে ভাত খাই এবং চা পান করি।", "hin", False),
        ("Η γάτα κοιμάται στον καναπέ.", "ell", True),  # Greek: the script decides alone
        ("私は猫が好きです。", "jpn", True),
        ("私は猫が好きです。", "zho_simpl", False),
        ("我喜欢猫。", "zho_simpl", True),
        ("我喜欢猫。", "jpn", False),
        ("2015 年年末， TogiNet 创建了 AstroNet 广播作为子电台。", "zho_simpl", True),
        ("Это хорошо, и он это знает.", "rus", True),
        ("Це добре, і він це знає.", "ukr", True),
        ("Це добре, і він це знає.", "rus", False),
        ("나는 고양이를 좋아한다", "kor", True),
        ("मुझे बिल्ली पसंद है", "hin", True),
        ("12345 !!!", "eng", False),
    ],
)
def test_is_in_language(text, lang, expected):
    assert metrics.is_in_language(text, lang) is expected


def test_get_language_accepts_the_three_code_styles():
    assert get_language("zho_simpl") == get_language("zho_Hans") == get_language("ZH")
    assert get_language("zho_trad").name == "Traditional Chinese"
    assert get_language("arb_Arab").code == "ara"


def test_a_target_the_identifier_lacks_rejects_texts_in_another_language():
    english = "The president said that his government would keep helping the country fight poverty."
    zulu = "Umongameli uthe uhulumeni wakhe uzoqhubeka nokusiza izwe ukulwa nobubha."
    assert not metrics.is_in_language(english, "zul")
    assert metrics.is_in_language(zulu, "zul")


@pytest.mark.parametrize(
    "text, script",
    [
        ("আমি ভাত খাই।", "Beng"),
        ("ሰላም ለዓለም", "Ethi"),
        ("Γειά σου κόσμε", "Grek"),
        ("私は猫が好きです。", "Jpan"),  # Han with kana
        ("2015 年年末， TogiNet 创建了 AstroNet 广播作为子电台。", "Hani"),  # Han outnumbers Latin names
        ("나는 고양이를 좋아한다", "Hang"),
        ("12345 !!!", None),
    ],
)
def test_text_script_from_the_unicode_scripts_data(text, script):
    assert metrics.text_script(text) == script
