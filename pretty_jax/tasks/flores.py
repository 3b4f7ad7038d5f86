"""Machine translation on Flores-101 / Flores-200: reading the line-aligned files and
scoring with BLEU, chrF++ (spBLEU with a local SentencePiece model) and the
target-language rate.

Layouts read (either code style works with either layout, e.g. "zho_simpl" finds
`zho_Hans.devtest`):
    <root>/<split>/<code>.<split>     the official flores101_dataset / flores200_dataset
    <root>/<code>.<split>             a folder of one split's files
"""

from __future__ import annotations

from pathlib import Path

from pretty_jax.core.errors import UserError
from pretty_jax.core.textio import read_lines
from pretty_jax.tasks import Example, apply_limit, metrics
from pretty_jax.tasks.languages import Language, get_language


def flores_file(root: Path, split: str, language: Language) -> Path:
    """The first existing of <root>/<split>/<code>.<split> and <root>/<code>.<split>, for
    the Flores-101 code, then the Flores-200 code."""
    names = [f"{language.code}.{split}", f"{language.flores200}.{split}"]
    candidates = [folder / name for folder in (root / split, root) for name in names]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise UserError(
        f"no Flores {split} file for {language.name} under {root}; looked for "
        + ", ".join(str(c) for c in candidates)
        + ". Point the data root at a flores101_dataset/flores200_dataset folder (holding dev/ "
        "and devtest/) or at a folder of <code>.<split> files"
    )


def read_parallel(source_path: Path, target_path: Path) -> list[tuple[str, str]]:
    """Line-aligned (source, target) sentence pairs of two files."""
    sources = read_lines(source_path, "Flores file")
    targets = read_lines(target_path, "Flores file")
    if len(sources) != len(targets):
        raise UserError(
            f"{source_path} has {len(sources)} lines but {target_path} has {len(targets)}; "
            "Flores files of one split must be line-aligned (same number of lines)"
        )
    if not sources:
        raise UserError(f"{source_path} is empty; expected one sentence per line")
    return list(zip(sources, targets))


class FloresTask:
    """Translate Flores sentences from `source_lang` into `target_lang` (any code style
    of languages.py). Example ids are "<split>-<index:05d>", index from 0.

    spm_model: a local Flores SentencePiece model; when given, `score` adds spBLEU.
    """

    name = "translation"

    def __init__(
        self,
        root: Path,
        split: str,
        source_lang: str,
        target_lang: str,
        limit: int | None = None,
        spm_model: Path | None = None,
    ):
        self._source = get_language(source_lang)
        self._target = get_language(target_lang)
        self.source_lang = self._source.code
        self.target_lang = self._target.code
        self.spm_model = spm_model
        root = Path(root)
        if not root.is_dir():
            raise UserError(f"Flores data folder {root} does not exist; check the path")
        self.input_files = [flores_file(root, split, self._source), flores_file(root, split, self._target)]
        pairs = read_parallel(*self.input_files)
        self._examples = [
            Example(id=f"{split}-{index:05d}", source=source, reference=target)
            for index, (source, target) in enumerate(apply_limit(pairs, limit))
        ]

    def examples(self) -> list[Example]:
        return list(self._examples)

    def prompt_fields(self) -> dict[str, str]:
        return {"src_lang": self._source.name, "tgt_lang": self._target.name}

    def postprocess(self, generated_text: str) -> str:
        """The first non-empty line, stripped (a foundation model goes on past it)."""
        return generated_text.lstrip().split("\n", 1)[0].strip()

    def score(self, predictions: list[str], examples: list[Example]) -> dict[str, float | str]:
        references = [example.reference for example in examples]
        scores = metrics.translation_scores(predictions, references, self.target_lang, self.spm_model)
        scores["target_language_rate"] = metrics.target_language_rate(predictions, self.target_lang)
        scores["target_language_signature"] = metrics.target_language_signature(self.target_lang)
        return scores
