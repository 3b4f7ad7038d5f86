"""Turns parallel text files into the SFT jsonl of `python -m pretty_jax.train --data_mode=sft`.

    python -m pretty_jax.make_sft_data --source_lang=eng --target_lang=deu,fra \\
        --source_files=wmt/newstest2012.{source_iso},wmt/newstest2013.{source_iso} \\
        --target_files=wmt/newstest2012.{target_iso},wmt/newstest2013.{target_iso} \\
        --prompt_template='Translate the following English text into {tgt_lang}.\\nEnglish: {source}\\n{tgt_lang}:' \\
        --output=sft/train.jsonl --eval_output=sft/eval.jsonl --eval_lines=100

One record per line pair and target language (see `training/parallel_text.py`); the
prompt is the experiments' template, so the trained model is asked in the prompt style
it learnt. Every input is checked before anything is written; an existing output file
is refused unless --overwrite.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from absl import flags

from pretty_jax.cli.escapes import unescape
from pretty_jax.core.errors import UserError
from pretty_jax.experiments.config import DEFAULT_TEMPLATES
from pretty_jax.experiments.inputs import fill_path
from pretty_jax.tasks import check_template
from pretty_jax.tasks.languages import get_language
from pretty_jax.training import parallel_text

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
    "prompt_template", DEFAULT_TEMPLATES["translation"],
    r"The instruction, as run's --prompt_template: {source}, {src_lang}, {tgt_lang} (English names), with the "
    r"escapes \n, \t, \r and \\. Use the template of the experiment the model is for.",
)
_OUTPUT = flags.DEFINE_string("output", None, "The training jsonl to write.", required=True)
_EVAL_OUTPUT = flags.DEFINE_string(
    "eval_output", None, "The held-out jsonl to write (for train's --eval_file); needs --eval_lines."
)
_EVAL_LINES = flags.DEFINE_integer(
    "eval_lines", 0, "Source lines held out of --output into --eval_output, in every target language.", lower_bound=0
)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the choice of held-out lines.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace --output / --eval_output when they exist.")


def _paths(templates: list[str], flag: str, source_lang: str, target_lang: str) -> list[Path]:
    return [fill_path(template, flag, source_lang, target_lang) for template in templates]


def _check_outputs(outputs: list[Path]) -> None:
    for output in outputs:
        if output.is_dir():
            raise UserError(f"{output} is a directory; give the path of the jsonl file to write")
        if output.exists() and not _OVERWRITE.value:
            raise UserError(f"{output} exists; pass --overwrite to replace it, or choose another path")
    if len(outputs) == 2 and outputs[0].absolute() == outputs[1].absolute():
        raise UserError(f"--output and --eval_output are both {outputs[0]}; give two files")


def _write_jsonl(path: Path, records: list[dict]) -> None:
    """Writes `path` whole or not at all (a temporary file renamed over it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(path.name + ".tmp")
    staging.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    os.replace(staging, path)


def main(argv: list[str]) -> None:
    del argv
    template = unescape(_PROMPT_TEMPLATE.value)
    source_lang, target_langs = _SOURCE_LANG.value, _TARGET_LANGS.value
    if not target_langs:
        raise UserError("--target_lang: give at least one target language")
    for code in (source_lang, *target_langs):
        get_language(code)
    check_template(template, parallel_text.prompt_fields(source_lang, target_langs[0]), "--prompt_template")
    if bool(_EVAL_OUTPUT.value) != bool(_EVAL_LINES.value):
        raise UserError("--eval_output and --eval_lines go together: give both (or neither)")
    outputs = [Path(_OUTPUT.value).expanduser()] + ([Path(_EVAL_OUTPUT.value).expanduser()] if _EVAL_OUTPUT.value else [])
    _check_outputs(outputs)
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
    _write_jsonl(outputs[0], train)
    print(f"{outputs[0]}: {len(train)} examples ({', '.join(target_langs)})")
    if len(outputs) == 2:
        _write_jsonl(outputs[1], evaluation)
        print(f"{outputs[1]}: {len(evaluation)} held-out examples ({len(held_out)} source lines)")
