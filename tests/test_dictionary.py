"""The MUSE reader keeps the file's order of translations, the dictionary prior follows
the capitalisation rule on real en-de data, the tag lexicon picks the usual tag, and
bad dictionary files are refused with path:line messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pretty_jax.core.errors import UserError
from pretty_jax.tasks import Example
from pretty_jax.tasks.dictionary import (
    dictionary_prior_options,
    dictionary_prior_words,
    lexicon_prior_tags,
    read_muse,
    tag_lexicon,
)
from pretty_jax.tasks.pos import PosTask

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="module")
def en_de() -> dict[str, tuple[str, ...]]:
    path = DATA / "muse" / "en-de.txt"
    if not path.exists():
        pytest.skip(f"real sample data not found at {path}")
    return read_muse(path)


def test_muse_keeps_file_order_most_frequent_first(en_de):
    assert len(en_de) == 74655
    assert en_de["the"] == ("die", "der", "dem", "den", "das")
    assert en_de["cat"] == ("katze", "kater", "katzen", "cat")


def test_muse_drops_repeated_pairs_and_blank_lines(tmp_path):
    path = tmp_path / "en-xx.txt"
    path.write_text("the die\nthe der\n\nthe die\ncat katze\n", encoding="utf-8")
    assert read_muse(path) == {"the": ("die", "der"), "cat": ("katze",)}


@pytest.mark.parametrize(
    "source, num_words, prior",
    [
        ("The cat sleeps.", 1, "Die"),  # sentence-initial and capitalised
        ("The cat sleeps.", 2, "Die katze"),
        ("the cat sleeps.", 2, "die katze"),
        ('"They sleep," he said.', 1, "Sie"),  # leading punctuation is skipped
        ("«Xyzzy the dog barks", 3, "die hund bellt"),  # first word unknown: "the" is not initial
        ("The cat xyzzy dog", 4, "Die katze"),  # stops at the first word without an entry
        ("Qwzx xyzzy.", 1, None),
    ],
)
def test_dictionary_prior_on_real_en_de(en_de, source, num_words, prior):
    assert dictionary_prior_words(source, en_de, num_words) == prior


def test_dictionary_prior_options_list_every_translation_in_file_order(tmp_path):
    path = tmp_path / "en-xx.txt"
    path.write_text("the die\nthe der\nthe das\ncat katze\ncat kater\n", encoding="utf-8")
    muse = read_muse(path)
    assert dictionary_prior_options("The cat sleeps", muse, 2) == [("Die", "Der", "Das"), ("katze", "kater")]
    assert dictionary_prior_options("a cat", muse, 2) == [("katze", "kater")]
    assert dictionary_prior_options("dog", muse) is None


def test_dictionary_prior_tries_the_lower_cased_word():
    assert dictionary_prior_words("Hello WORLD", {"world": ("Welt",)}) == "Welt"
    assert dictionary_prior_words("Paris is big", {"Paris": ("París",), "paris": ("wrong",)}) == "París"


def test_dictionary_prior_refuses_a_non_positive_count():
    with pytest.raises(UserError, match="num_words=0"):
        dictionary_prior_words("The cat", {"the": ("die",)}, num_words=0)


def test_muse_missing_file(tmp_path):
    with pytest.raises(UserError, match=re.escape(f"MUSE dictionary {tmp_path / 'en-de.txt'} does not exist")):
        read_muse(tmp_path / "en-de.txt")


def test_muse_empty_file(tmp_path):
    path = tmp_path / "en-de.txt"
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(UserError, match=re.escape(f"MUSE dictionary {path} has no entries")):
        read_muse(path)


def test_muse_line_without_two_fields_names_file_and_line(tmp_path):
    path = tmp_path / "en-de.txt"
    path.write_text("the die\nice cream eis\n", encoding="utf-8")
    expected = f"{path}:2: expected 'source target' (two words), found 3 fields"
    with pytest.raises(UserError, match="^" + re.escape(expected)):
        read_muse(path)


def test_muse_non_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "en-de.txt"
    path.write_bytes(b"the die\nover \xfcber\n")
    with pytest.raises(UserError, match="^" + re.escape(f"{path}:2: not valid UTF-8")):
        read_muse(path)


def test_tag_lexicon_takes_the_most_frequent_tag_and_the_first_on_ties():
    examples = [
        Example("1", "", "", words=("la", "la", "porte"), tags=("DET", "PRON", "NOUN")),
        Example("2", "", "", words=("la", "ferme"), tags=("DET", "NOUN")),
        Example("3", "", "", words=("ferme",), tags=("VERB",)),
    ]
    assert tag_lexicon(examples) == {"la": "DET", "porte": "NOUN", "ferme": "NOUN"}


def test_lexicon_prior_tags_on_real_french():
    path = DATA / "ud" / "fr_gsd-ud-dev.conllu"
    if not path.exists():
        pytest.skip(f"real sample data not found at {path}")
    lexicon = tag_lexicon(PosTask(path, "fra").examples())
    assert (lexicon["la"], lexicon["de"], lexicon["est"]) == ("DET", "ADP", "AUX")
    assert lexicon_prior_tags(["Les", "études", "xyzzy", "durent"], lexicon, num_tags=4) == "DET NOUN"
    assert lexicon_prior_tags(["Xyzzy", "est"], lexicon) is None
