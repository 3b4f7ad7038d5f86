"""Flores+ (openlanguagedata/flores_plus), the maintained successor of Flores-200: one
parquet file per language and split, `<root>/dev/<iso639-3>_<Script>.parquet` and
`<root>/devtest/...`, with a `text` column and metadata columns (`id`, `iso_639_3`,
`iso_15924`, `glottocode`, `url`, `domain`, `topic`, ...). Sentences are matched across
languages by `id` (position when a file has no `id` column).

Flores+ relabelled some Flores-200 files (its CHANGELOG, 2.0): the Chinese files are
Mandarin (`zho_Hans` -> `cmn_Hans`), Tagalog is Filipino, Estonian, Guarani and Kongo
are named by their individual languages, and a few varieties carry a glottocode
(`apc_Arab_nort3139`). `parquet_stems` lists the names to look for.

Reading needs pyarrow: `pip install 'pretty_jax[flores-plus]'`.
"""

from __future__ import annotations

from pathlib import Path

from pretty_jax.core.errors import MissingDependencyError, UserError
from pretty_jax.tasks.languages import Language

# Flores-200 name -> Flores+ name of the same file (openlanguagedata/flores CHANGELOG).
FLORES_PLUS_NAMES = {
    "zho_Hans": "cmn_Hans", "zho_Hant": "cmn_Hant", "tgl_Latn": "fil_Latn", "est_Latn": "ekk_Latn",
    "grn_Latn": "gug_Latn", "kon_Latn": "ktu_Latn", "tzm_Tfng": "zgh_Tfng",
}  # fmt: skip


def parquet_stems(language: Language) -> list[str]:
    """File names (without .parquet) that hold `language` in Flores+ order of preference."""
    stems = [language.flores200, FLORES_PLUS_NAMES.get(language.flores200), language.code]
    return list(dict.fromkeys(stem for stem in stems if stem))


def find_parquet(folder: Path, language: Language) -> Path | None:
    """`<folder>/<stem>.parquet` for the first stem that exists, else the one
    glottocode variety `<flores200>_<glottocode>.parquet`; None when there is none.
    Raises UserError when several varieties exist and none is named plainly."""
    for stem in parquet_stems(language):
        if (folder / f"{stem}.parquet").is_file():
            return folder / f"{stem}.parquet"
    varieties = sorted(folder.glob(f"{language.flores200}_*.parquet")) if folder.is_dir() else []
    if len(varieties) > 1:
        raise UserError(
            f"{folder} holds several Flores+ varieties of {language.name}: "
            + ", ".join(v.name for v in varieties)
            + f"; link or copy the one to evaluate as {folder / (language.flores200 + '.parquet')}"
        )
    return varieties[0] if varieties else None


def read_parquet_sentences(path: Path) -> list[tuple[str, str]]:
    """(id, text) of every row of a Flores+ parquet file, ordered by id (as read when the
    file has no `id` column: ids are then row positions). Raises UserError naming the
    file for a missing `text` column, an empty text or a file pyarrow cannot read."""
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise MissingDependencyError(
            f"{path} is a Flores+ parquet file; reading it needs pyarrow: pip install 'pretty_jax[flores-plus]' "
            "(or pip install pyarrow)"
        ) from None
    try:
        table = parquet.read_table(path)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable parquet file ({e})") from None
    if "text" not in table.column_names:
        raise UserError(
            f"{path} has no 'text' column (columns: {', '.join(table.column_names)}); a Flores+ file "
            "holds the sentences in 'text'"
        )
    texts = table.column("text").to_pylist()
    ids = table.column("id").to_pylist() if "id" in table.column_names else list(range(len(texts)))
    rows = []
    for row, (sentence_id, text) in enumerate(zip(ids, texts)):
        if not isinstance(text, str) or not text.strip():
            raise UserError(f"{path}: row {row} (id {sentence_id}) has an empty text; Flores+ rows hold one sentence")
        rows.append((sentence_id, text))
    if len({sentence_id for sentence_id, _ in rows}) != len(rows):
        raise UserError(f"{path}: the 'id' column repeats ids; each Flores+ sentence has its own id")
    return [(str(sentence_id), text) for sentence_id, text in sorted(rows, key=lambda row: row[0])]


def read_parallel_parquet(source_path: Path, target_path: Path) -> list[tuple[str, str]]:
    """(source, target) sentence pairs of two Flores+ files, matched by id."""
    sources, targets = read_parquet_sentences(source_path), read_parquet_sentences(target_path)
    target_of = dict(targets)
    missing = [sentence_id for sentence_id, _ in sources if sentence_id not in target_of]
    if missing or len(sources) != len(targets):
        raise UserError(
            f"{source_path} ({len(sources)} sentences) and {target_path} ({len(targets)}) do not hold the same "
            f"sentence ids (first missing from the target: {missing[:3]}); use files of one Flores+ release and split"
        )
    if not sources:
        raise UserError(f"{source_path} has no rows; expected one sentence per row")
    return [(text, target_of[sentence_id]) for sentence_id, text in sources]
