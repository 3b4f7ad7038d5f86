"""Every reader of a text input (Flores, CrossSum, CoNLL-U, XGLUE, MUSE, the align
prompts file, the refined file, training corpora) reads a file with classic Mac line
ends (a lone CR) line by line, as it reads the same file with LF or CRLF ends; and the
align prompts file refuses what would fail after the models load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pretty_jax.alignment.runner import read_prompts_file
from pretty_jax.core.errors import UserError
from pretty_jax.core.textio import read_lines
from pretty_jax.experiments.inputs import read_refined_file
from pretty_jax.tasks.crosssum import read_crosssum
from pretty_jax.tasks.dictionary import read_muse
from pretty_jax.tasks.flores import FloresTask
from pretty_jax.tasks.pos import read_tagged
from pretty_jax.training.data import read_documents, read_sft_examples

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.exists(), reason="../shared/data (real sample data) is absent")


def _head(path: Path, count: int) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")[:count]


def _flores(folder: Path, text: str) -> list:
    """Flores: two line-aligned files; `text` is the English one, the French one is the
    same lines upper-cased."""
    folder.mkdir()
    (folder / "eng.devtest").write_bytes(text.encode("utf-8"))
    (folder / "fra.devtest").write_bytes(text.upper().encode("utf-8"))
    return FloresTask(folder, "devtest", "eng", "fra").examples()


def _jsonl(fields: tuple[str, ...]):
    def lines() -> list[str]:
        sentences = _head(DATA / "flores101_devtest" / "fra.devtest", 5)
        return [json.dumps({"id": f"devtest-{i:05d}", **{f: s for f in fields}}, ensure_ascii=False)
                for i, s in enumerate(sentences)]
    return lines


def _conllu_lines() -> list[str]:
    lines = _head(DATA / "ud" / "fr_gsd-ud-dev.conllu", 200)
    return lines[: [i for i, line in enumerate(lines) if not line][2]]  # three sentences


def _xglue_lines() -> list[str]:
    return ["\t".join((c.split("\t")[1], c.split("\t")[3])) if c and not c.startswith("#") else ""
            for c in _conllu_lines() if not c.startswith("#")]


# reader name -> (file name, the file's LF lines, the reader, how many items the lines hold)
READERS = {
    "flores": ("flores", lambda: _head(DATA / "flores101_devtest" / "eng.devtest", 5),
               lambda path, text: _flores(path, text), 5),
    "crosssum": ("cs.jsonl", _jsonl(("text", "summary")), lambda path, _: read_crosssum(path), 5),
    "conllu": ("fr.conllu", _conllu_lines, lambda path, _: read_tagged(path), 3),
    "xglue": ("fr.txt", _xglue_lines, lambda path, _: read_tagged(path), 3),
    "muse": ("en-de.txt", lambda: _head(DATA / "muse" / "en-de.txt", 8), lambda path, _: read_muse(path), 3),
    "align prompts": ("prompts.jsonl", _jsonl(("prompt", "reference")), lambda path, _: read_prompts_file(path), 5),
    "refined": ("refined.jsonl", _jsonl(("text",)), lambda path, _: read_refined_file(path), 5),
    "corpus txt": ("corpus.txt", lambda: _head(DATA / "flores101_devtest" / "eng.devtest", 5),
                   lambda path, _: read_documents(path), 5),
    "corpus jsonl": ("corpus.jsonl", _jsonl(("text",)), lambda path, _: read_documents(path), 5),
    "sft jsonl": ("sft.jsonl", _jsonl(("prompt", "response")), lambda path, _: read_sft_examples(path), 5),
}


@needs_data
@pytest.mark.parametrize("reader", list(READERS))
def test_cr_only_line_ends_read_as_the_same_lines_as_lf(tmp_path, reader):
    name, lines, read, count = READERS[reader]
    results = {}
    for style, end in (("lf", "\n"), ("crlf", "\r\n"), ("cr", "\r")):
        text = end.join(lines()) + end
        path = tmp_path / style / name
        path.parent.mkdir()
        if reader != "flores":
            path.write_bytes(text.encode("utf-8"))
        results[style] = read(path, text)
    assert len(results["lf"]) == count, results["lf"]
    assert results["cr"] == results["crlf"] == results["lf"]


def test_read_lines_splits_at_lf_crlf_and_lone_cr_only(tmp_path):
    path = tmp_path / "mixed.txt"
    # U+2028, U+0085 and a form feed stay inside their line (str.splitlines would split there).
    path.write_bytes("\ufeffone\rtwo\r\nthree\u2028still three\x85\x0c\nfour\r\r".encode("utf-8"))
    assert read_lines(path, "file") == ["one", "two", "three\u2028still three\x85\x0c", "four", ""]


def test_a_utf8_error_in_a_cr_only_file_names_its_line(tmp_path):
    path = tmp_path / "mac.txt"
    path.write_bytes(b"one\rtwo\rthr\xe9e\r")
    with pytest.raises(UserError, match=r"mac.txt:3: not valid UTF-8"):
        read_lines(path, "Flores file")


# The align prompts file: refused at reading, before any model loads.


@pytest.mark.parametrize("line, message", [
    ('{"id": "b", "prompt": "Hello", "reference": 42}', r"prompts.jsonl:2: field 'reference' must be a string where "
                                                         r"given, but it is a int"),
    ('{"id": "b", "prompt": "Hello", "reference": ["Bonjour"]}', r"prompts.jsonl:2: field 'reference' .* a list"),
    ('{"id": "b", "prompt": ""}', r'prompts.jsonl:2: "prompt" is empty'),
    ('{"id": "b", "prompt": "  \\n"}', r'prompts.jsonl:2: "prompt" is empty'),
    ('{"id": "a", "prompt": "Bye"}', r"prompts.jsonl:2: id 'a' repeats line 1"),
])
def test_the_align_prompts_file_refuses_what_would_fail_later(tmp_path, line, message):
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"id": "a", "prompt": "Hi", "reference": "Salut"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=message):
        read_prompts_file(path)


def test_an_absent_or_null_reference_is_no_reference(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "Hi"}\n{"prompt": "Bye", "reference": null}\n', encoding="utf-8")
    assert [(e.id, e.reference) for e in read_prompts_file(path)] == [("1", None), ("2", None)]


def test_a_refined_file_with_a_repeated_id_is_refused_naming_both_lines(tmp_path):
    path = tmp_path / "refined.jsonl"
    path.write_text('{"id": "devtest-00000", "text": "Die"}\n{"id": "devtest-00001", "text": "Der"}\n\n'
                    '{"id": "devtest-00000", "text": "Das"}\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"refined.jsonl:4: id 'devtest-00000' repeats line 1"):
        read_refined_file(path)
