"""Machine translation on Flores-101 / Flores-200 / Flores+: reading the files and scoring
with BLEU, chrF++ (spBLEU with a local SentencePiece model) and the target-language rate.

Layouts read, picked by what the data folder holds (either code style works with every
layout, e.g. "zho_simpl" finds `zho_Hans.devtest` and Flores+'s `cmn_Hans.parquet`):
    <root>/<split>/<code>.<split>     the official flores101_dataset / flores200_dataset
    <root>/<code>.<split>             a folder of one split's files
    <root>/<split>/<code>.parquet     Flores+ (openlanguagedata/flores_plus), see flores_plus.py
    <root>/<code>.parquet             a folder of one split's Flores+ files
Text files are line-aligned; Flores+ rows are matched by their `id`.
"""

from __future__ import annotations

from pathlib import Path

from pretty_jax.core.errors import UserError
from pretty_jax.core.textio import read_lines
from pretty_jax.tasks import Example, apply_limit, flores_plus, metrics
from pretty_jax.tasks.languages import Language, get_language


def flores_file(root: Path, split: str, language: Language) -> Path:
    """The first existing of <root>/<split>/<code>.<split> and <root>/<code>.<split>, for
    the Flores-101 code, then the Flores-200 code; else the Flores+ parquet file of
    <root>/<split> or <root> (`flores_plus.find_parquet`)."""
    names = [f"{language.code}.{split}", f"{language.flores200}.{split}"]
    folders = (root / split, root)
    candidates = [folder / name for folder in folders for name in names]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    for folder in folders:
        parquet = flores_plus.find_parquet(folder, language)
        if parquet is not None:
            return parquet
    parquets = [folder / f"{stem}.parquet" for folder in folders for stem in flores_plus.parquet_stems(language)]
    raise UserError(
        f"no Flores {split} file for {language.name} under {root}; looked for "
        + ", ".join(str(c) for c in candidates + parquets)
        + ". Point the data root at a flores101_dataset/flores200_dataset folder (holding dev/ "
        "and devtest/), a Flores+ folder (dev/ and devtest/ of <code>.parquet files) or a folder of "
        "<code>.<split> files"
    )


def read_sentences(path: Path) -> list[str]:
    """The sentences of a Flores file in order: lines of a text file, `text` of a
    Flores+ parquet file by id."""
    if path.suffix == ".parquet":
        return [text for _, text in flores_plus.read_parquet_sentences(path)]
    return read_lines(path, "Flores file")


def read_parallel(source_path: Path, target_path: Path) -> list[tuple[str, str]]:
    """Aligned (source, target) sentence pairs of two Flores files: by id for two Flores+
    files, by position otherwise."""
    if source_path.suffix == target_path.suffix == ".parquet":
        return flores_plus.read_parallel_parquet(source_path, target_path)
    sources, targets = read_sentences(source_path), read_sentences(target_path)
    if len(sources) != len(targets):
        unit = "lines" if ".parquet" not in (source_path.suffix, target_path.suffix) else "sentences"
        raise UserError(
            f"{source_path} has {len(sources)} {unit} but {target_path} has {len(targets)}; "
            f"Flores files of one split must be aligned (same number of {unit})"
        )
    if not sources:
        raise UserError(f"{source_path} is empty; expected one sentence per line")
    return list(zip(sources, targets))


class FloresTask:
    """Translate Flores sentences from `source_lang` into `target_lang` (any code style
    of languages.py). Example ids are "<split>-<index:05d>", index from 0.

    spm_model: a local Flores SentencePiece model; when given, `score` adds spBLEU.
    """

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

    def score(self, predictions: list[str], examples: list[Example]) -> dict[str, float | bool | str | None]:
        references = [example.reference for example in examples]
        scores: dict[str, float | bool | str | None] = dict(
            metrics.translation_scores(predictions, references, self.target_lang, self.spm_model)
        )
        scores |= metrics.target_language_scores(predictions, self.target_lang)
        sources = [example.source for example in examples]
        scores["source_language_rate"] = metrics.source_language_rate(predictions, sources, self.source_lang)
        return scores
