"""The evaluation tasks' shared pieces: the `Example` record, the `Task` protocol the
runner drives, prompt rendering, and reading a UTF-8 text file with errors that name
the file and line.

One module per task's data and metrics: `flores.py` (translation), `crosssum.py`
(summarisation), `pos.py` (part-of-speech tagging); `registry.py` makes each a task
the experiment runs (one `TaskKind` per task); `languages.py` holds the language table.
"""

from __future__ import annotations

import dataclasses
import string
from pathlib import Path
from typing import Mapping, Protocol, Sequence, TypeVar, runtime_checkable

from pretty_jax.core.errors import UserError

Item = TypeVar("Item")


@dataclasses.dataclass(frozen=True)
class Example:
    """One evaluation item.

    id: stable and unique within a dataset, e.g. "devtest-00042" or "crosssum-17".
    source: the input: a sentence, a document, or the words to tag joined by single spaces.
    reference: the gold output: a translation, a summary, or the gold tags joined by
      single spaces.
    words, tags: POS only: the words to tag and their gold UPOS tags, one per word.
    """

    id: str
    source: str
    reference: str
    words: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@runtime_checkable
class Task(Protocol):
    """What the runner needs from one language pair of a task (the registry entry,
    registry.TaskKind, opens it). `source_lang`/`target_lang` are canonical
    codes of `languages.py`; `score` takes postprocessed predictions aligned with
    `examples` and returns metric name -> value (strings for signatures), always with a
    "target_language_rate" entry; tasks whose outputs are text in a language add
    `target_language.target_language_scores` (close-relative rate, reliability) and
    "source_language_rate". `input_files` are the files its examples come from
    (their fingerprints guard a resumed run)."""

    source_lang: str
    target_lang: str
    input_files: list[Path]

    def examples(self) -> list[Example]: ...

    def prompt_fields(self) -> dict[str, str]: ...

    def postprocess(self, generated_text: str) -> str: ...

    def score(self, predictions: list[str], examples: list[Example]) -> dict[str, float | bool | str | None]: ...


def format_prompt(template: str, example: Example, fields: Mapping[str, str], shots: Sequence[Example] = ()) -> str:
    """The prompt for `example`: each shot rendered with `template`, followed by
    " " + its reference + "\\n\\n", then `example` rendered with `template`.

    template: a Python format string; placeholders are {source} (required) and the keys
      of `fields` (e.g. {src_lang}, {tgt_lang}: language names). Literal braces are {{ }}.
    """
    problem = template_problem(template, fields)
    if problem:
        raise UserError(f"prompt template {template!r} {problem}")
    parts = [_render(template, shot, fields) + " " + shot.reference + "\n\n" for shot in shots]
    return "".join(parts) + _render(template, example, fields)


def check_template(template: str, fields: Mapping[str, str], setting: str) -> None:
    """Raises UserError naming `setting` (e.g. "template", the CLI shows its flag) when
    `template` cannot be filled with {source} and `fields`, or would give every example
    the same prompt."""
    problem = template_problem(template, fields)
    if problem:
        raise UserError(f"{setting}={template!r} {problem}")


def template_problem(template: str, fields: Mapping[str, str]) -> str | None:
    """What makes `template` unusable with {source} and `fields` (a phrase that follows
    the template in a message), or None. Two sources that differ from their first
    character are rendered: a template showing neither (no {source}, or {source:.0})
    would give every example the same prompt."""
    known = {"source", *fields}
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as e:
        return f"is not a valid format string ({e}); write literal braces as {{{{ and }}}}"
    for name in names:
        if name not in known:
            shown = f"{{{name}}}" if name else "a positional {}"
            return (f"uses {shown}, which this task does not fill; "
                    f"known placeholders: {', '.join('{' + k + '}' for k in sorted(known))}")
    try:
        one, other = (_render(template, Example("", source, ""), fields) for source in ("A", "B"))
    except (KeyError, IndexError, ValueError, AttributeError, TypeError) as e:  # e.g. a bad format spec
        return f"cannot be filled ({type(e).__name__}: {e})"
    if one == other:
        return "would give every example the same prompt: put {source} where the example's text goes"
    return None


def _render(template: str, example: Example, fields: Mapping[str, str]) -> str:
    """`template` filled for `example` (checked by `template_problem` first)."""
    return template.format_map({**fields, "source": example.source})


def apply_limit(items: list[Item], limit: int | None) -> list[Item]:
    """The first `limit` items (all of them for None)."""
    if limit is None:
        return items
    if limit < 1:
        raise UserError(f"limit={limit}: give a positive number of examples (or none for all)")
    return items[:limit]
