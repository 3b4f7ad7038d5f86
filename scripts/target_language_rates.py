"""The target-language rate on real data: references (should be ~1) and their English
sources (should be ~0), for every language of a data folder laid out like ../shared/data.

    python scripts/target_language_rates.py [--data=../shared/data]

Rows: each Flores-101 devtest reference file against its language, and the English file
against each of those languages and against Zulu (a Flores-101 target the identifier
lacks, scored as a translation task scores it: with English as the source language);
each UD dev treebank's sentences (`# text =`) against its language. Columns: sentences, rate, the decision path (tasks/target_language.py's
signature) and ms per sentence. Last line: `min_reference_rate=X max_source_rate=Y`.
"""

from __future__ import annotations

import time
from pathlib import Path

from absl import app, flags

from pretty_jax.tasks.metrics import target_language_rate, target_language_signature

_DATA = flags.DEFINE_string(
    "data", str(Path(__file__).resolve().parents[2] / "shared" / "data"), "Folder of flores101_devtest/ and ud/."
)
# UD treebank file prefix -> language code.
_UD_LANGUAGES = {"de_gsd": "deu", "fr_gsd": "fra", "zh_gsdsimp": "zho_simpl"}
# A Flores-101 language LID-176 does not know.
_UNKNOWN_TO_THE_IDENTIFIER = "zul"


def _rows(data: Path) -> list[tuple[str, str, list[str], str]]:
    """(kind, file, sentences, language code) to measure."""
    flores = data / "flores101_devtest"
    english = (flores / "eng.devtest").read_text(encoding="utf-8").splitlines()
    rows = [("reference", "eng.devtest", english, "eng")]
    for path in sorted(flores.glob("*.devtest")):
        code = path.name.removesuffix(".devtest")
        if code != "eng":
            rows.append(("reference", path.name, path.read_text(encoding="utf-8").splitlines(), code))
            rows.append(("English source", "eng.devtest", english, code))
    rows.append(("English source", "eng.devtest", english, _UNKNOWN_TO_THE_IDENTIFIER))
    for path in sorted((data / "ud").glob("*.conllu")):
        code = next((c for prefix, c in _UD_LANGUAGES.items() if path.name.startswith(prefix)), None)
        if code is not None:
            lines = path.read_text(encoding="utf-8").splitlines()
            sentences = [line.removeprefix("# text = ") for line in lines if line.startswith("# text = ")]
            rows.append(("UD sentence", path.name, sentences, code))
    return rows


def main(argv: list[str]) -> None:
    del argv
    data = Path(_DATA.value)
    if not (data / "flores101_devtest" / "eng.devtest").is_file():
        raise SystemExit(f"{data} has no flores101_devtest/eng.devtest; give --data=FOLDER (see ../shared/data)")
    print(f"{'texts':<15} {'file':<26} {'target':<10} {'n':>5} {'rate':>7} {'ms/text':>8}  decided by")
    references, sources = [], []
    for kind, name, sentences, code in _rows(data):
        start = time.perf_counter()
        rate = target_language_rate(sentences, code, source_lang="eng")
        milliseconds = 1000 * (time.perf_counter() - start) / len(sentences)
        (sources if kind == "English source" else references).append(rate)
        print(f"{kind:<15} {name:<26} {code:<10} {len(sentences):>5} {rate:>7.4f} {milliseconds:>8.3f}  "
              f"{target_language_signature(code, 'eng')}")  # fmt: skip
    print(f"min_reference_rate={min(references):.4f} max_source_rate={max(sources):.4f}")


if __name__ == "__main__":
    app.run(main)
