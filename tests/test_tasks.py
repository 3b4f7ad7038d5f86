"""The task readers give the examples a user expects from the real Flores and UD files
(and from Flores-200, CrossSum and XGLUE layouts built here), refuse bad files with a
path:line message, and render, postprocess and score as documented."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sacrebleu.metrics import BLEU

from pretty_jax.core.errors import UserError
from pretty_jax.tasks import Example, Task, format_prompt
from pretty_jax.tasks.crosssum import CrossSumTask, truncate_documents
from pretty_jax.tasks.flores import FloresTask
from pretty_jax.tasks.pos import PosTask, parse_tags

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FLORES = DATA / "flores101_devtest"
UD = DATA / "ud"
TEMPLATE = "Translate the following sentence from {src_lang} to {tgt_lang}.\n{src_lang}: {source}\n{tgt_lang}:"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real sample data not found at {path}")
    return path


# --- Flores ----------------------------------------------------------------------------


def test_flores_eng_to_zho_gives_1012_aligned_examples():
    task = FloresTask(_need(FLORES), "devtest", "eng", "zho_simpl")
    examples = task.examples()
    assert len(examples) == 1012
    assert examples[0].id == "devtest-00000" and examples[-1].id == "devtest-01011"
    assert examples[0].source.startswith('"We now have 4-month-old mice that are non-diabetic')
    assert examples[0].reference == "他补充道：“我们现在有 4 个月大没有糖尿病的老鼠，但它们曾经得过该病。”"
    assert examples[1011].source == (FLORES / "eng.devtest").read_text(encoding="utf-8").splitlines()[1011]
    assert task.prompt_fields() == {"src_lang": "English", "tgt_lang": "Chinese"}
    assert (task.source_lang, task.target_lang) == ("eng", "zho_simpl")
    assert isinstance(task, Task)


def test_flores_200_and_iso_codes_find_flores_101_files():
    by_101 = FloresTask(_need(FLORES), "devtest", "eng", "deu", limit=5).examples()
    by_200 = FloresTask(FLORES, "devtest", "eng_Latn", "de", limit=5)
    assert by_200.examples() == by_101
    assert by_200.target_lang == "deu"


def _write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_flores_200_layout_with_either_code_style(tmp_path):
    root = tmp_path / "flores200_dataset"
    _write(root / "dev" / "eng_Latn.dev", ["Hello.", "Good night."])
    (root / "dev" / "zho_Hans.dev").write_bytes("\ufeff你好。\r\n晚安。\r\n".encode())  # BOM and CRLF are dropped
    _write(root / "devtest" / "eng_Latn.devtest", ["Other split."])
    for source, target in (("eng", "zho_simpl"), ("eng_Latn", "zho_Hans")):
        task = FloresTask(root, "dev", source, target)
        assert task.examples() == [Example("dev-00000", "Hello.", "你好。"), Example("dev-00001", "Good night.", "晚安。")]
    assert len(FloresTask(root, "dev", "eng", "zho_simpl", limit=1).examples()) == 1


def test_flores_missing_file_says_which_files_were_looked_for(tmp_path):
    _write(tmp_path / "eng.devtest", ["Hello."])
    with pytest.raises(UserError) as error:
        FloresTask(tmp_path, "devtest", "eng", "fra")
    message = str(error.value)
    assert "no Flores devtest file for French" in message
    assert str(tmp_path / "devtest" / "fra.devtest") in message and str(tmp_path / "fra_Latn.devtest") in message


def test_flores_missing_root_is_named(tmp_path):
    with pytest.raises(UserError, match=re.escape(f"Flores data folder {tmp_path / 'nowhere'} does not exist")):
        FloresTask(tmp_path / "nowhere", "devtest", "eng", "fra")


def test_flores_line_count_mismatch_names_both_files(tmp_path):
    english = _write(tmp_path / "eng.devtest", ["One.", "Two.", "Three."])
    german = _write(tmp_path / "deu.devtest", ["Eins.", "Zwei."])
    with pytest.raises(UserError) as error:
        FloresTask(tmp_path, "devtest", "eng", "deu")
    assert f"{english} has 3 lines but {german} has 2" in str(error.value)


def test_flores_non_utf8_names_file_and_line(tmp_path):
    _write(tmp_path / "eng.devtest", ["One.", "Two.", "Three."])
    german = tmp_path / "deu.devtest"
    german.write_bytes("Eins.\nZwei.\n".encode() + "Drei über.\n".encode("latin-1"))
    with pytest.raises(UserError, match=f"^{re.escape(str(german))}:3: not valid UTF-8"):
        FloresTask(tmp_path, "devtest", "eng", "deu")


def test_flores_unknown_language_lists_known_codes(tmp_path):
    with pytest.raises(UserError) as error:
        FloresTask(tmp_path, "devtest", "eng", "notalanguage")
    message = str(error.value)
    assert "unknown language code 'notalanguage'" in message
    assert "zho_simpl (zho_Hans, zh)" in message and "deu (deu_Latn, de)" in message


def test_flores_bad_limit_is_refused():
    with pytest.raises(UserError, match="limit=0"):
        FloresTask(_need(FLORES), "devtest", "eng", "deu", limit=0)


def test_flores_postprocess_keeps_the_first_non_empty_line():
    task = FloresTask(_need(FLORES), "devtest", "eng", "zho_simpl", limit=1)
    assert task.postprocess(" 我们有猫。 \nEnglish: next sentence") == "我们有猫。"
    assert task.postprocess("\n 我们有猫。\n") == "我们有猫。"


def test_flores_score_matches_sacrebleu_and_reports_language_rate():
    task = FloresTask(_need(FLORES), "devtest", "eng", "deu", limit=50)
    examples = task.examples()
    predictions = [e.reference for e in examples[:40]] + [e.source for e in examples[40:]]
    scores = task.score(predictions, examples)
    direct = BLEU(tokenize="13a").corpus_score(predictions, [[e.reference for e in examples]])
    assert scores["bleu"] == pytest.approx(direct.score)
    assert scores["target_language_rate"] == pytest.approx(40 / 50)
    assert scores["source_language_rate"] == pytest.approx(10 / 50)  # the English sources, copied
    assert scores["target_language_reliable"] is True and "|decider:" in scores["target_language_signature"]


# --- prompts -------------------------------------------------------------------------


def test_format_prompt_zero_and_few_shot():
    fields = {"src_lang": "English", "tgt_lang": "German"}
    example = Example("x", "The cat.", "Die Katze.")
    shot = Example("s", "Hello.", "Hallo.")
    assert format_prompt(TEMPLATE, example, fields) == (
        "Translate the following sentence from English to German.\nEnglish: The cat.\nGerman:"
    )
    assert format_prompt(TEMPLATE, example, fields, shots=[shot]) == (
        "Translate the following sentence from English to German.\nEnglish: Hello.\nGerman: Hallo.\n\n"
        "Translate the following sentence from English to German.\nEnglish: The cat.\nGerman:"
    )


def test_format_prompt_names_an_unknown_placeholder_and_the_known_ones():
    with pytest.raises(UserError) as error:
        format_prompt("{source} in {language}", Example("x", "a", "b"), {"src_lang": "English"})
    expected = "uses {language}, which this task does not fill; known placeholders: {source}, {src_lang}"
    assert expected in str(error.value)


def test_format_prompt_explains_unbalanced_braces():
    with pytest.raises(UserError, match="not a valid format string"):
        format_prompt("{source", Example("x", "a", "b"), {})


# --- CrossSum ------------------------------------------------------------------------


def _jsonl(path: Path, records: list[object]) -> Path:
    return _write(path, [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records])


def test_crosssum_reads_text_and_summary(tmp_path):
    path = _jsonl(
        tmp_path / "english-chinese_simplified_val.jsonl",
        [
            {"source_url": "u1", "target_url": "u2", "text": "A long story about cats.", "summary": "猫的故事。"},
            "",
            {"text": "Dogs bark.", "summary": "狗叫。"},
        ],
    )
    task = CrossSumTask(path, "en", "zh")
    assert task.examples() == [
        Example("crosssum-0", "A long story about cats.", "猫的故事。"),
        Example("crosssum-1", "Dogs bark.", "狗叫。"),
    ]
    assert (task.source_lang, task.target_lang) == ("eng", "zho_simpl")
    assert isinstance(task, Task)
    assert task.postprocess("  猫的故事。\n") == "猫的故事。"
    scores = task.score(["猫的故事。", "Dogs bark."], task.examples())
    assert scores["rouge1"] == pytest.approx(50.0) and scores["target_language_rate"] == 0.5
    assert scores["source_language_rate"] == 0.5  # "Dogs bark." copies its source


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", ":2: not valid JSON"),
        ('["a list"]', ":2: expected a JSON object, found list"),
        ('{"text": "only text"}', ":2: field 'summary' must be a string, but it is missing"),
        ('{"text": 3, "summary": "s"}', ":2: field 'text' must be a string, but it is a int"),
    ],
)
def test_crosssum_bad_line_names_file_and_line(tmp_path, line, message):
    path = _jsonl(tmp_path / "pair.jsonl", [{"text": "t", "summary": "s"}, line])
    with pytest.raises(UserError, match="^" + re.escape(f"{path}{message}")):
        CrossSumTask(path, "eng", "fra")


def test_crosssum_missing_and_empty_files(tmp_path):
    with pytest.raises(UserError, match=re.escape(f"CrossSum file {tmp_path / 'none.jsonl'} does not exist")):
        CrossSumTask(tmp_path / "none.jsonl", "eng", "fra")
    empty = _write(tmp_path / "empty.jsonl", [""])
    with pytest.raises(UserError, match=re.escape(f"{empty} holds no records")):
        CrossSumTask(empty, "eng", "fra")


def test_truncate_documents_cuts_english_at_word_boundaries():
    examples = [Example("a", "one two three, four five six", "r"), Example("b", "short text", "r")]
    shortened, truncated = truncate_documents(examples, lambda text: len(text.split()), max_tokens=3)
    assert truncated == 1
    assert [e.source for e in shortened] == ["one two three,", "short text"]
    assert shortened[0].reference == "r" and shortened[0].id == "a"


def test_truncate_documents_cuts_chinese_between_characters():
    examples = [Example("zh", "我们现在有四个月大的老鼠。", "r")]
    shortened, truncated = truncate_documents(examples, len, max_tokens=5)
    assert (shortened[0].source, truncated) == ("我们现在有", 1)


def test_truncate_documents_cuts_inside_a_word_only_when_it_alone_is_too_long():
    examples = [Example("de", "Donaudampfschifffahrtsgesellschaft war groß", "r")]
    shortened, _ = truncate_documents(examples, len, max_tokens=10)
    assert shortened[0].source == "Donaudampf"


def test_truncate_documents_refuses_a_budget_without_room():
    with pytest.raises(UserError, match="max_tokens=0"):
        truncate_documents([Example("a", "text", "r")], len, max_tokens=0)
    with pytest.raises(UserError, match="leaves no room"):
        truncate_documents([Example("a", "text", "r")], lambda text: len(text) + 2, max_tokens=1)


# --- POS -----------------------------------------------------------------------------


def test_conllu_reader_skips_multiword_tokens_on_real_french():
    task = PosTask(_need(UD / "fr_gsd-ud-dev.conllu"), "fr")
    examples = task.examples()
    assert len(examples) == 1476
    # fr-ud-dev_00006: 34 surface tokens, of which "des", "du", "des" are split in two.
    sentence = examples[5]
    assert len(sentence.words) == len(sentence.tags) == 37
    assert sentence.words[17:25] == ("de", "les", "projets", "politiques", ",", "de", "le", "renouveau")
    assert sentence.tags[17:25] == ("ADP", "DET", "NOUN", "ADJ", "PUNCT", "ADP", "DET", "NOUN")
    assert sentence.source == " ".join(sentence.words) and sentence.reference == " ".join(sentence.tags)
    assert (task.source_lang, task.target_lang) == ("fra", "fra")
    assert isinstance(task, Task)
    assert task.prompt_fields()["lang"] == "French"


@pytest.mark.parametrize(
    "name, lang, sentences, words", [("de_gsd", "de", 799, 12480), ("zh_gsdsimp", "zh", 500, 12663)]
)
def test_conllu_reader_counts_on_real_files(name, lang, sentences, words):
    examples = PosTask(_need(UD / f"{name}-ud-dev.conllu"), lang).examples()
    assert (len(examples), sum(len(e.words) for e in examples)) == (sentences, words)


CONLLU = [
    "# sent_id = 1",
    "# text = Au chat 25 785.",
    "1-2\tAu\t_\t_\t_\t_\t_\t_\t_\t_",
    "1\tÀ\tà\tADP\t_\t_\t3\tcase\t_\t_",
    "2\tle\tle\tDET\t_\t_\t3\tdet\t_\t_",
    "3\tchat\tchat\tNOUN\t_\t_\t0\troot\t_\t_",
    "3.1\tmange\tmanger\tVERB\t_\t_\t_\t_\t3:conj\t_",
    "4\t25 785\t25 785\tNUM\t_\t_\t3\tnummod\t_\tSpaceAfter=No",
    "5\t.\t.\tPUNCT\t_\t_\t3\tpunct\t_\t_",
    "",
    "1\tOui\toui\tINTJ\t_\t_\t0\troot\t_\t_",
]


def test_conllu_reader_skips_empty_nodes_and_keeps_words_whole(tmp_path):
    path = _write(tmp_path / "tiny.conllu", CONLLU)
    examples = PosTask(path, "fra").examples()
    assert examples == [
        Example(
            "sent-00000",
            "À le chat 25785 .",
            "ADP DET NOUN NUM PUNCT",
            words=("À", "le", "chat", "25785", "."),
            tags=("ADP", "DET", "NOUN", "NUM", "PUNCT"),
        ),
        Example("sent-00001", "Oui", "INTJ", ("Oui",), ("INTJ",)),
    ]


@pytest.mark.parametrize(
    "line, message",
    [
        ("3\tchat\tchat\tNOUN\t_\t_\t0\troot", ":6: a CoNLL-U token line needs 10 tab-separated columns, found 8"),
        ("3\tchat\tchat\tNOM\t_\t_\t0\troot\t_\t_", ":6: unknown UPOS tag 'NOM'"),
        ("x\tchat\tchat\tNOUN\t_\t_\t0\troot\t_\t_", ":6: bad token ID 'x'"),
        ("4\tchat\tchat\tNOUN\t_\t_\t0\troot\t_\t_", ":6: word ID 4 should be 3"),
    ],
)
def test_malformed_conllu_line_names_file_and_line(tmp_path, line, message):
    path = _write(tmp_path / "bad.conllu", CONLLU[:5] + [line] + CONLLU[6:])
    with pytest.raises(UserError, match="^" + re.escape(f"{path}{message}")):
        PosTask(path, "fra")


def test_xglue_word_tag_format_is_detected_by_content(tmp_path):
    path = _write(tmp_path / "de.dev", ["Das\tPRON", "ist\tAUX", "gut\tADJ", "", "", "Ja\tINTJ", ""])
    examples = PosTask(path, "deu").examples()
    assert [(e.words, e.tags) for e in examples] == [
        (("Das", "ist", "gut"), ("PRON", "AUX", "ADJ")),
        (("Ja",), ("INTJ",)),
    ]


def test_xglue_bad_line_names_file_and_line(tmp_path):
    path = _write(tmp_path / "de.dev", ["Das\tPRON", "ist"])
    with pytest.raises(UserError, match=f"^{re.escape(str(path))}:2: expected 'word<TAB>TAG'"):
        PosTask(path, "deu")


@pytest.mark.parametrize(
    "output, tags",
    [
        ("DET NOUN verb", ["DET", "NOUN", "VERB"]),
        ("Le/DET chat/NOUN dort/VERB", ["DET", "NOUN", "VERB"]),
        ("Le_DET chat_NOUN", ["DET", "NOUN"]),
        ("DET, NOUN, (VERB).", ["DET", "NOUN", "VERB"]),
        ("DET NOUN\n\nFrench: Le chien aboie.\nTags: DET NOUN VERB", ["DET", "NOUN"]),
        ("I am not sure what you mean.", []),
        ("", []),
    ],
)
def test_parse_tags_reads_messy_outputs(output, tags):
    assert parse_tags(output) == tags


def test_pos_score_counts_positions_missing_and_extra_tags(tmp_path):
    path = _write(tmp_path / "fr.dev", ["Le\tDET", "chat\tNOUN", "dort\tVERB", "", "Oui\tINTJ"])
    task = PosTask(path, "fra")
    raw = ["Le/DET chat/NOUN dort/ADJ garbage NOUN PUNCT", "¯\\_(ツ)_/¯ no idea"]
    predictions = [task.postprocess(text) for text in raw]
    assert predictions == ["DET NOUN ADJ NOUN PUNCT", ""]
    scores = task.score(predictions, task.examples())
    assert scores == {"pos_accuracy": 2 / 4, "pos_missing_tags": 1, "pos_extra_tags": 2, "target_language_rate": 0.5}


def test_format_prompt_refuses_a_template_that_shows_no_source():
    fields = {"src_lang": "English", "tgt_lang": "German"}
    for template in ("Translate into {tgt_lang}:", "Translate: {source:.0}", "{{source}} into {tgt_lang}"):
        with pytest.raises(UserError, match="would give every example the same prompt: put {source} where"):
            format_prompt(template, Example("x", "a", "b"), fields)
    assert format_prompt("{source:.3}", Example("x", "The cat.", ""), fields) == "The"  # part of it shows
