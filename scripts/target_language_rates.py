"""Calibrates the target-language measure on Flores-101 devtest references and measures
it on held-out text (pretty_jax/tasks/language_calibration.py says how).

    python scripts/target_language_rates.py [--data=../shared/data] [--write]

Prints, per Flores-101 language: the decider chosen, the reference rate before (the
LID-176-only measure this table replaced, carried over from the shipped table) and
after on the calibration lines (the first 500), after on the held-out lines (500 to the
end), the close-relative share of the references, the English-source rate, the other
language most accepted, the verdict; then the rates on WMT newstest2013 and UD dev
sentences, and ms per sentence. With --write it writes the table to
pretty_jax/tasks/target_language_calibration.json (the measure reads it from there).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from absl import app, flags

from pretty_jax.tasks import language_identifiers as identifiers
from pretty_jax.tasks import target_language
from pretty_jax.tasks.language_calibration import calibrate, held_out_domains, read_flores
from pretty_jax.tasks.languages import get_language

_DATA = flags.DEFINE_string(
    "data", str(Path(__file__).resolve().parents[2] / "shared" / "data"),
    "Folder of flores101_devtest/, wmt_newstest/ and ud/ (laid out like ../shared/data).",
)  # fmt: skip
_WRITE = flags.DEFINE_bool(
    "write", False, f"Write the table to {target_language.CALIBRATION_FILE.name} in pretty_jax/tasks/."
)


def _with_before(table: dict) -> dict:
    """Carries the "reference_rate_before" column over from the shipped table."""
    shipped = target_language.calibration_table()["languages"] if target_language.CALIBRATION_FILE.is_file() else {}
    for code, row in table["languages"].items():
        row["reference_rate_before"] = shipped.get(code, {}).get("reference_rate_before")
    return table


def _print_table(table: dict) -> None:
    print(f"{'language':<22} {'decider':<26} {'before':>6} {'after':>6} {'held':>6} {'relat':>6} {'eng':>6}  "
          f"{'most accepted other':<14} reliable")  # fmt: skip
    for code, row in table["languages"].items():
        before = "–" if row["reference_rate_before"] is None else f"{row['reference_rate_before']:.3f}"
        english = "–" if row["english_source_rate"] is None else f"{row['english_source_rate']:.3f}"
        other = row["most_accepted_other"]
        other_cell = f"{other['language'] or '–'} {other['rate']:.3f}"
        print(f"{code + ' ' + get_language(code).name[:12]:<22} {row['decider']:<26} {before:>6} "
              f"{row['reference_rate']:>6.3f} {row['reference_rate_held_out']:>6.3f} {row['close_relative_rate']:>6.3f} "
              f"{english:>6}  {other_cell:<14} {'yes' if row['reliable'] else 'NO'}")  # fmt: skip
    unreliable = [code for code, row in table["languages"].items() if not row["reliable"]]
    print(f"not reliable: {len(unreliable)} ({' '.join(unreliable)})")


def main(argv: list[str]) -> None:
    del argv
    data = Path(_DATA.value)
    if not (data / "flores101_devtest" / "eng.devtest").is_file():
        raise SystemExit(f"{data} has no flores101_devtest/eng.devtest; give --data=FOLDER (see ../shared/data)")
    flores = read_flores(data / "flores101_devtest")
    start = time.perf_counter()
    table = _with_before(calibrate(flores))
    print(f"calibrated in {time.perf_counter() - start:.0f} s")
    _print_table(table)
    if _WRITE.value:
        target_language.CALIBRATION_FILE.write_text(json.dumps(table, indent=1, allow_nan=False) + "\n", encoding="utf-8")
        target_language.calibration_table.cache_clear()
        print(f"wrote {target_language.CALIBRATION_FILE}")
    for row in held_out_domains(data):
        print(f"{row['texts']:<28} {row['language']:<10} {row['sentences']:>5} sentences  rate {row['rate']:.4f}")
    sentences = [line for lines in flores.values() for line in lines[:100]]
    start = time.perf_counter()
    for code in ("deu", "hrv", "kam"):
        identifiers.guesses.cache_clear()
        target_language.target_language_rate(sentences, code)
    print(f"{1000 * (time.perf_counter() - start) / (3 * len(sentences)):.3f} ms per sentence (uncached)")


if __name__ == "__main__":
    app.run(main)
