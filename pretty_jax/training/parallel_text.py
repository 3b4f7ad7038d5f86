"""Parallel text files -> SFT records: a translation instruction (the experiments' prompt
template) as the prompt, the translation as the response.

    pairs = read_parallel_files([Path("newstest2013.en")], [Path("newstest2013.de")])
    records = sft_records(pairs, template, source_lang="eng", target_lang="deu")
    # {"prompt": "Translate ... German.\\nEnglish: ...\\nGerman:", "response": " Eine ...",
    #  "id": "newstest2013.de:1", "source_lang": "eng", "target_lang": "deu"}

The prompt is the template filled as the experiments fill it (`tasks.format_prompt`
with the Flores task's fields {src_lang}, {tgt_lang}: English language names), and the
response is " " + the target line: the separator the experiments put between a prompt
and its answer (few-shot answers, word-level priors). A model trained on these records
answers the experiment's zero-shot prompt with the translation and then EOS.

Files are line-aligned: line i of a source file translates line i of its target file;
a pair with a blank side is skipped. Held-out records are chosen by source line, so a
sentence held out is held out in every target language.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pretty_jax.core.errors import UserError
from pretty_jax.core.textio import read_lines
from pretty_jax.tasks import Example, format_prompt
from pretty_jax.tasks.languages import get_language

# (source line's key "<source file>:<line>", id "<target file name>:<line>", source, target)
Pair = tuple[str, str, str, str]


def read_parallel_files(source_paths: Sequence[Path], target_paths: Sequence[Path]) -> list[Pair]:
    """The aligned (source key, id, source, target) lines of each source file and the target file
    at the same position, in order; lines blank on either side are skipped.

    Raises UserError naming both files when they differ in line count, and naming the
    files when none of them holds a pair."""
    if len(source_paths) != len(target_paths):
        raise UserError(
            f"--source_files gives {len(source_paths)} files but --target_files {len(target_paths)}; "
            "give one target file per source file, in the same order"
        )
    pairs: list[Pair] = []
    for source_path, target_path in zip(source_paths, target_paths):
        sources = read_lines(source_path, "source file")
        targets = read_lines(target_path, "target file")
        if len(sources) != len(targets):
            raise UserError(
                f"{source_path} has {len(sources)} lines but {target_path} has {len(targets)}; parallel "
                "files must be line-aligned (line i of one translates line i of the other)"
            )
        pairs += [
            (f"{source_path}:{number}", f"{target_path.name}:{number}", source.strip(), target.strip())
            for number, (source, target) in enumerate(zip(sources, targets), start=1)
            if source.strip() and target.strip()
        ]
    if not pairs:
        names = ", ".join(str(p) for p in [*source_paths, *target_paths])
        raise UserError(f"{names}: no line holds a sentence on both sides")
    return pairs


def prompt_fields(source_lang: str, target_lang: str) -> dict[str, str]:
    """The template's language fields, as the Flores task gives them ({src_lang},
    {tgt_lang}: English names, e.g. "German")."""
    return {"src_lang": get_language(source_lang).name, "tgt_lang": get_language(target_lang).name}


def sft_records(pairs: Sequence[Pair], template: str, source_lang: str, target_lang: str) -> list[dict[str, Any]]:
    """One {"prompt", "response", "id", "source_lang", "target_lang"} record per pair."""
    fields = prompt_fields(source_lang, target_lang)
    return [
        {
            "prompt": format_prompt(template, Example(record_id, source, target), fields),
            "response": " " + target,
            "id": record_id,
            "source_lang": source_lang,
            "target_lang": target_lang,
        }
        for _, record_id, source, target in pairs
    ]


def held_out_keys(source_keys: Sequence[str], count: int, seed: int) -> set[str]:
    """`count` of the distinct `source_keys` (pair[0]), drawn by `seed`: the same source
    lines for every target language, so a held-out sentence is never trained on."""
    distinct = sorted(set(source_keys))
    if not 0 <= count < len(distinct):
        raise UserError(
            f"--eval_lines={count} must be >= 0 and below the {len(distinct)} source lines with a translation"
        )
    chosen = np.random.default_rng(seed).choice(len(distinct), size=count, replace=False)
    return {distinct[i] for i in chosen}
