"""Reading the project's text inputs (plain lines, jsonl) with errors that name the
file and line and say what to do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Sequence

from pretty_jax.core.errors import UserError


def read_lines(path: Path, description: str) -> list[str]:
    """The lines of a UTF-8 text file without their ends: "\\n", "\\r\\n" or a lone "\\r" (a
    classic Mac file), as Python's text mode reads them (a final line end does not start
    another line; a leading byte-order mark is dropped).

    description: what the file is, for error messages (e.g. "Flores file").
    Raises UserError when the file is missing or not UTF-8 (naming path:line).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{description} {path} does not exist; check the path") from None
    except IsADirectoryError:
        raise UserError(f"{description} {path} is a directory; give the path of a file") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = _line_ends(data[: e.start]) + 1
        raise UserError(f"{path}:{line}: not valid UTF-8 ({e.reason}); convert the {description} to UTF-8") from None
    # Only these three ends: str.splitlines would also split at \v, \f, \x1c-\x1e, \x85,
    # U+2028 and U+2029, which can occur inside a sentence.
    lines = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def _line_ends(data: bytes) -> int:
    """How many line ends ("\\n", "\\r\\n" or "\\r") `data` holds."""
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


def numbered_lines(path: Path, description: str) -> list[tuple[int, str]]:
    """(line number, line) of every non-blank line."""
    return [(number, line) for number, line in enumerate(read_lines(path, description), start=1) if line.strip()]


def read_jsonl(path: Path, description: str, string_fields: Sequence[str] = (),
               optional_string_fields: Sequence[str] = ()) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) of every non-blank line of a jsonl file; each line must be a
    JSON object whose `string_fields` are strings, and whose `optional_string_fields` are
    strings where present (null counts as absent)."""
    records = []
    for number, line in numbered_lines(path, description):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{number}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(record, dict):
            raise UserError(f"{path}:{number}: expected a JSON object, found {type(record).__name__}")
        for field in string_fields:
            if not isinstance(record.get(field), str):
                found = "missing" if field not in record else f"a {type(record[field]).__name__}"
                raise UserError(f"{path}:{number}: field {field!r} must be a string, but it is {found}")
        for field in optional_string_fields:
            if record.get(field) is not None and not isinstance(record[field], str):
                raise UserError(f"{path}:{number}: field {field!r} must be a string where given, but it is a "
                                f"{type(record[field]).__name__}")
        records.append((number, record))
    if not records:
        raise UserError(f"{description} {path} holds no records; expected one JSON object per line")
    return records


def check_unique_ids(path: Path, numbered_ids: Iterable[tuple[int, str]]) -> None:
    """Raises UserError naming the file and both lines of the first id that repeats
    (numbered_ids: (line number, id) in file order)."""
    first_line: dict[str, int] = {}
    for number, record_id in numbered_ids:
        if record_id in first_line:
            raise UserError(f"{path}:{number}: id {record_id!r} repeats line {first_line[record_id]}; "
                            "give every line its own id")
        first_line[record_id] = number
