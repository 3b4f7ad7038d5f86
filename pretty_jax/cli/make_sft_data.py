"""Turns parallel text files into the SFT jsonl of `python -m pretty_jax.train --data_mode=sft`.

    python -m pretty_jax.make_sft_data --source_lang=eng --target_lang=deu,fra \\
        --source_files=wmt/newstest2012.{source_iso},wmt/newstest2013.{source_iso} \\
        --target_files=wmt/newstest2012.{target_iso},wmt/newstest2013.{target_iso} \\
        --prompt_template='Translate the following English text into {tgt_lang}.\\nEnglish: {source}\\n{tgt_lang}:' \\
        --output_dir=sft --eval_lines=100

writes sft/train.jsonl and, with --eval_lines, sft/eval.jsonl (train's --train_file and
--eval_file): one record per line pair and target language (see
`training/parallel_text.py`); the prompt is the experiments' template, so the trained
model is asked in the prompt style it learnt. Every input is checked before anything
is written. --output_dir is owned file by file like any run's (see `core.run_dir`): a
folder holding other files is refused, and running again replaces only the files it
wrote.
"""

from __future__ import annotations

import json
from pathlib import Path

from absl import flags

from pretty_jax.cli import help as cli_help
from pretty_jax.cli.escapes import unescape
from pretty_jax.core.errors import UserError
from pretty_jax.core.run_dir import RunDirectory, check_output_dir
from pretty_jax.experiments.inputs import fill_path
from pretty_jax.tasks import check_template
from pretty_jax.tasks.languages import get_language
from pretty_jax.tasks.registry import get_task
from pretty_jax.training import parallel_text

TRAIN_FILE, EVAL_FILE = "train.jsonl", "eval.jsonl"

_SOURCE_LANG = flags.DEFINE_string("source_lang", "eng", "Language of the source files (any code: eng, en, eng_Latn).")
_TARGET_LANGS = flags.DEFINE_list(
    "target_lang", None, "Comma-separated target languages; each reads its own --target_files.", required=True
)
_SOURCE_FILES = flags.DEFINE_list(
    "source_files", None,
    "Comma-separated source text files, one sentence per line; may contain {source_lang}, {target_lang}, "
    "{source_iso}, {target_iso} (ISO 639-1), e.g. wmt/newstest2013.{source_iso}.",
    required=True,
)
_TARGET_FILES = flags.DEFINE_list(
    "target_files", None,
    "Comma-separated target files, line-aligned with --source_files at the same position; with the same "
    "placeholders (several --target_lang need {target_lang} or {target_iso}), e.g. wmt/newstest2013.{target_iso}.",
    required=True,
)
_PROMPT_TEMPLATE = flags.DEFINE_string(
    "prompt_template", get_task("translation").default_template,
    r"The instruction, as run's --prompt_template: {source}, {src_lang}, {tgt_lang} (English names), with the "
    r"escapes \n, \t, \r and \\. Use the template of the experiment the model is for.",
)
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, f"Where {TRAIN_FILE} (train's --train_file) and, with --eval_lines, {EVAL_FILE} (its "
    "--eval_file) go.", required=True,
)
_EVAL_LINES = flags.DEFINE_integer(
    "eval_lines", 0, f"Source lines held out of {TRAIN_FILE} into {EVAL_FILE}, in every target language.",
    lower_bound=0,
)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the choice of held-out lines.")

HELP = cli_help.Help(
    "python -m pretty_jax.make_sft_data",
    "Turns line-aligned parallel text files into the SFT jsonl of python -m pretty_jax.train --data_mode=sft, "
    "prompted with an experiment's --prompt_template; --eval_lines source lines are held out in every target "
    "language.",
    examples=(
        "python -m pretty_jax.make_sft_data --target_lang=deu,fra --source_files=wmt/newstest2013.{source_iso} "
        "--target_files=wmt/newstest2013.{target_iso} --output_dir=out/wmt_sft --eval_lines=20",
    ),
    required={"target_lang": "", "source_files": "", "target_files": "", "output_dir": ""},
)


def _paths(templates: list[str], flag: str, source_lang: str, target_lang: str) -> list[Path]:
    return [fill_path(template, flag, source_lang, target_lang) for template in templates]


def _jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def main(argv: list[str]) -> None:
    del argv
    template = unescape(_PROMPT_TEMPLATE.value)
    source_lang, target_langs = _SOURCE_LANG.value, _TARGET_LANGS.value
    if not target_langs:
        raise UserError("--target_lang: give at least one target language")
    for code in (source_lang, *target_langs):
        get_language(code)
    check_template(template, parallel_text.prompt_fields(source_lang, target_langs[0]), "--prompt_template")
    output_dir = Path(_OUTPUT_DIR.value).expanduser()
    check_output_dir(output_dir, "--output_dir")
    if len(target_langs) > 1:
        for target_file in _TARGET_FILES.value:
            if "{target_lang}" not in target_file and "{target_iso}" not in target_file:
                raise UserError(
                    f"--target_files: {target_file} is the same file for every --target_lang; "
                    "put {target_lang} or {target_iso} in it (or give one --target_lang)"
                )
    pairs = {}
    for target_lang in target_langs:
        sources = _paths(_SOURCE_FILES.value, "source_files", source_lang, target_lang)
        targets = _paths(_TARGET_FILES.value, "target_files", source_lang, target_lang)
        if set(targets) & set(sources):
            raise UserError(f"--target_files for {target_lang} name a source file ({targets[0]}); use {{target_iso}}")
        pairs[target_lang] = parallel_text.read_parallel_files(sources, targets)
    held_out = parallel_text.held_out_keys(
        [p[0] for lang_pairs in pairs.values() for p in lang_pairs], _EVAL_LINES.value, _SEED.value
    )
    train, evaluation = [], []
    for target_lang, lang_pairs in pairs.items():
        train += parallel_text.sft_records([p for p in lang_pairs if p[0] not in held_out], template,
                                           source_lang, target_lang)
        evaluation += parallel_text.sft_records([p for p in lang_pairs if p[0] in held_out], template,
                                                source_lang, target_lang)
    output = RunDirectory.open(output_dir, "sft_data", "--output_dir")
    try:
        print(f"{output.write_text(TRAIN_FILE, _jsonl(train))}: {len(train)} examples ({', '.join(target_langs)})")
        if _EVAL_LINES.value:
            path = output.write_text(EVAL_FILE, _jsonl(evaluation))
            print(f"{path}: {len(evaluation)} held-out examples ({len(held_out)} source lines)")
        elif output.owns(EVAL_FILE):  # an earlier run's, of lines now trained on
            output.remove([EVAL_FILE])
    finally:
        output.close()
