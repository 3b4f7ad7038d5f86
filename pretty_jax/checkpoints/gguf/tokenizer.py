"""The tokenizer a GGUF file describes in its `tokenizer.*` metadata, rebuilt as
transformers rebuilds it (`AutoTokenizer.from_pretrained(dir, gguf_file=name)`) but
without torch: transformers' GGUF reader imports torch, its tokenizer converters
(`transformers.integrations.gguf.gguf_tokenizer_mapping`) do not. So the metadata comes
from our own header parse (`header`), grouped and renamed as transformers' reader
groups it, and goes to those converters. The files saved are byte-identical to the
ones transformers saves (tests/test_gguf.py, and the real Gemma 3 270M file in
tests/test_gguf_real.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pretty_jax.checkpoints.gguf.reader import GGUFFile
from pretty_jax.core.errors import CheckpointError, MissingDependencyError

# The first transformers whose GGUF tokenizer converters take the metadata as grouped
# here (and whose own reading adds BOS as `_settings` does).
MIN_TRANSFORMERS = "5.23"
# transformers' tokenizer argument -> the `tokenizer.ggml.*` key of its token's id.
_SPECIAL_TOKENS = {
    "bos_token": "bos_token_id", "eos_token": "eos_token_id",
    "unk_token": "unknown_token_id", "pad_token": "padding_token_id",
}


def _converters():
    """transformers' GGUF tokenizer converters, refused by version where they differ."""
    import transformers

    major_minor = tuple(int(part) for part in re.findall(r"\d+", transformers.__version__)[:2])
    if major_minor < tuple(int(part) for part in MIN_TRANSFORMERS.split(".")):
        raise MissingDependencyError(
            f"rebuilding a GGUF file's tokenizer needs transformers>={MIN_TRANSFORMERS} (installed: "
            f"{transformers.__version__}): pip install -U 'transformers>={MIN_TRANSFORMERS}'"
        )
    from transformers.integrations.gguf import gguf_tokenizer_mapping

    return gguf_tokenizer_mapping


def _tokens(file: GGUFFile) -> list[str]:
    tokens = file.value("tokenizer.ggml.tokens")
    if not isinstance(tokens, list) or not tokens or not all(isinstance(token, str) for token in tokens):
        raise CheckpointError(f"{file.path}: no tokenizer: tokenizer.ggml.tokens is missing or not a list of strings")
    return tokens


def _settings(file: GGUFFile, renames: dict[str, dict[str, str]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the converters' tokenizer dict, the tokenizer's arguments), as transformers'
    `get_gguf_tokenizer` builds them from the metadata."""
    metadata = file.metadata | {"tokenizer.ggml.tokens": _tokens(file)}
    grouped = {
        group: {name: metadata[f"tokenizer.{key}"] for key, name in keys.items() if f"tokenizer.{key}" in metadata}
        for group, keys in renames.items()
    }
    vocabulary, arguments = grouped["tokenizer"], grouped["tokenizer_config"]
    if vocabulary.get("tokenizer_type") == "llama":
        arguments.setdefault("add_bos_token", True)  # llama.cpp adds BOS unless a sentencepiece file says not to
    elif vocabulary.get("tokenizer_type") == "gemma4":
        arguments["add_bos_token"] = False  # its chat template writes <bos> itself
    tokens = vocabulary["tokens"]
    for name, key in _SPECIAL_TOKENS.items():
        token_id = file.value(f"tokenizer.ggml.{key}")
        if token_id is not None and (isinstance(token_id, bool) or not isinstance(token_id, int)
                                     or not 0 <= token_id < len(tokens)):
            raise CheckpointError(
                f"{file.path}: metadata tokenizer.ggml.{key}={token_id!r} is not one of its {len(tokens):,} tokens"
            )
        arguments[name] = tokens[token_id] if token_id is not None else None
    return vocabulary, arguments


def save_tokenizer(file: GGUFFile, directory: Path) -> None:
    """Writes the tokenizer files of the GGUF `file` into `directory`, which already
    holds the model's config.json (transformers picks the tokenizer class by it)."""
    from transformers import AutoTokenizer

    converters = _converters()
    vocabulary, arguments = _settings(file, converters.GGUF_TOKENIZER_MAPPING)
    try:
        backend, more_arguments = converters.convert_gguf_tokenizer(file.architecture_name, vocabulary)
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise CheckpointError(f"{file.path}: transformers cannot rebuild its tokenizer ({e})") from None
    tokenizer = AutoTokenizer.from_pretrained(directory, tokenizer_object=backend, **(arguments | more_arguments))
    tokenizer.save_pretrained(directory)
