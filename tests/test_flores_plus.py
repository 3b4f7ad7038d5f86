"""Flores+ parquet files (openlanguagedata/flores_plus layout), written in the test with
the real columns, are read next to the text layouts: matched by id, relabelled names
found from either code style, bad files refused with their name."""

from __future__ import annotations

import builtins
import re
from pathlib import Path

import pytest

from pretty_jax.core.errors import MissingDependencyError, UserError
from pretty_jax.tasks import Example
from pretty_jax.tasks.flores import FloresTask

pa = pytest.importorskip("pyarrow", reason="pyarrow (the flores-plus extra) is not installed")
import pyarrow.parquet as pq  # noqa: E402

ENGLISH = ["On Monday, scientists announced a new test.", "The test is cheap.", "It was published in Nature."]
SWAHILI = ["Jumatatu, wanasayansi walitangaza kipimo kipya.", "Kipimo ni cha bei nafuu.", "Kilichapishwa katika Nature."]
CHINESE = ["周一，科学家们宣布了一种新的测试。", "这项测试很便宜。", "它发表在《自然》杂志上。"]


def _write_flores_plus(path: Path, iso_639_3: str, script: str, texts: list[str], ids: list[int] | None = None) -> Path:
    """A parquet file with Flores+'s columns (id, iso_639_3, iso_15924, glottocode, text, url,
    domain, topic, has_image, has_hyperlink, last_updated)."""
    ids = list(range(len(texts))) if ids is None else ids
    count = len(texts)
    table = pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "iso_639_3": [iso_639_3] * count,
            "iso_15924": [script] * count,
            "glottocode": ["xxxx1234"] * count,
            "text": texts,
            "url": [f"https://en.wikinews.org/wiki/{i}" for i in ids],
            "domain": ["wikinews"] * count,
            "topic": ["science"] * count,
            "has_image": [False] * count,
            "has_hyperlink": [False] * count,
            "last_updated": ["2.0"] * count,
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def test_flores_plus_layout_is_read_and_matched_by_id(tmp_path):
    _write_flores_plus(tmp_path / "devtest" / "eng_Latn.parquet", "eng", "Latn", ENGLISH)
    # Rows in another order: sentences are matched by id, not by position.
    _write_flores_plus(tmp_path / "devtest" / "swh_Latn.parquet", "swh", "Latn", SWAHILI[::-1], ids=[2, 1, 0])
    _write_flores_plus(tmp_path / "dev" / "swh_Latn.parquet", "swh", "Latn", ["Other split."])
    for source, target in (("eng", "swh"), ("eng_Latn", "swh_Latn"), ("en", "sw")):
        task = FloresTask(tmp_path, "devtest", source, target)
        assert task.examples() == [Example(f"devtest-{i:05d}", e, s) for i, (e, s) in enumerate(zip(ENGLISH, SWAHILI))]
    assert task.prompt_fields() == {"src_lang": "English", "tgt_lang": "Swahili"}
    assert [p.name for p in task.input_files] == ["eng_Latn.parquet", "swh_Latn.parquet"]


def test_flores_plus_relabelled_chinese_is_found_from_the_flores101_code(tmp_path):
    _write_flores_plus(tmp_path / "eng_Latn.parquet", "eng", "Latn", ENGLISH)
    _write_flores_plus(tmp_path / "cmn_Hans.parquet", "cmn", "Hans", CHINESE)  # Flores+ 2.0's zho_Hans
    task = FloresTask(tmp_path, "devtest", "eng", "zho_simpl", limit=2)
    assert [e.reference for e in task.examples()] == CHINESE[:2]
    assert task.input_files[1].name == "cmn_Hans.parquet"


def test_text_files_win_over_parquet_in_the_same_folder(tmp_path):
    (tmp_path / "devtest").mkdir()
    (tmp_path / "devtest" / "eng.devtest").write_text("\n".join(ENGLISH) + "\n", encoding="utf-8")
    _write_flores_plus(tmp_path / "devtest" / "swh_Latn.parquet", "swh", "Latn", SWAHILI)
    task = FloresTask(tmp_path, "devtest", "eng", "swh")  # a text source and a parquet target: by position
    assert [(e.source, e.reference) for e in task.examples()] == list(zip(ENGLISH, SWAHILI))


def test_a_single_glottocode_variety_is_found_and_several_are_refused(tmp_path):
    _write_flores_plus(tmp_path / "eng_Latn.parquet", "eng", "Latn", ENGLISH)
    _write_flores_plus(tmp_path / "apc_Arab_nort3139.parquet", "apc", "Arab", ["أ", "ب", "ج"])
    assert FloresTask(tmp_path, "devtest", "eng", "apc_Arab").input_files[1].name == "apc_Arab_nort3139.parquet"
    _write_flores_plus(tmp_path / "apc_Arab_sout3123.parquet", "apc", "Arab", ["أ", "ب", "ج"])
    with pytest.raises(UserError, match="several Flores\\+ varieties .*apc_Arab_nort3139.parquet, apc_Arab_sout3123"):
        FloresTask(tmp_path, "devtest", "eng", "apc_Arab")


def test_flores_plus_files_of_different_sentences_are_refused(tmp_path):
    english = _write_flores_plus(tmp_path / "eng_Latn.parquet", "eng", "Latn", ENGLISH)
    swahili = _write_flores_plus(tmp_path / "swh_Latn.parquet", "swh", "Latn", SWAHILI[:2], ids=[0, 5])
    with pytest.raises(UserError, match=re.escape(f"{english} (3 sentences) and {swahili} (2) do not hold the same")):
        FloresTask(tmp_path, "devtest", "eng", "swh")


def test_a_parquet_file_without_text_column_or_with_an_empty_row_is_named(tmp_path):
    _write_flores_plus(tmp_path / "eng_Latn.parquet", "eng", "Latn", ENGLISH)
    french = tmp_path / "fra_Latn.parquet"
    pq.write_table(pa.table({"id": [0, 1, 2], "sentence": ["a", "b", "c"]}), french)
    with pytest.raises(UserError, match=re.escape(f"{french} has no 'text' column (columns: id, sentence)")):
        FloresTask(tmp_path, "devtest", "eng", "fra")
    _write_flores_plus(french, "fra", "Latn", ["Un.", " ", "Trois."])
    with pytest.raises(UserError, match=re.escape(f"{french}: row 1 (id 1) has an empty text")):
        FloresTask(tmp_path, "devtest", "eng", "fra")
    french.write_bytes(b"not parquet")
    with pytest.raises(UserError, match=re.escape(f"{french}: not a readable parquet file")):
        FloresTask(tmp_path, "devtest", "eng", "fra")


def test_missing_pyarrow_names_the_extra(tmp_path, monkeypatch):
    _write_flores_plus(tmp_path / "eng_Latn.parquet", "eng", "Latn", ENGLISH)
    _write_flores_plus(tmp_path / "swh_Latn.parquet", "swh", "Latn", SWAHILI)
    real_import = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name.startswith("pyarrow"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    with pytest.raises(MissingDependencyError, match=re.escape("pip install 'pretty_jax[flores-plus]'")):
        FloresTask(tmp_path, "devtest", "eng", "swh")


def test_the_missing_file_message_names_the_parquet_candidates(tmp_path):
    _write_flores_plus(tmp_path / "devtest" / "eng_Latn.parquet", "eng", "Latn", ENGLISH)
    with pytest.raises(UserError) as error:
        FloresTask(tmp_path, "devtest", "eng", "zho_simpl")
    message = str(error.value)
    assert str(tmp_path / "devtest" / "zho_Hans.parquet") in message and "cmn_Hans.parquet" in message
    assert "a Flores+ folder" in message
