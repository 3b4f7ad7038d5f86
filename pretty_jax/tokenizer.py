"""Loading a checkpoint's tokenizer (transformers' fast tokenizer), offline."""

from __future__ import annotations

from pathlib import Path

from pretty_jax.errors import UserError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


def load_tokenizer(directory: Path):
    """The tokenizer saved beside a checkpoint. Never downloads anything."""
    from transformers import AutoTokenizer

    if not any((directory / name).exists() for name in TOKENIZER_FILES):
        raise UserError(
            f"{directory} has no tokenizer files ({', '.join(TOKENIZER_FILES)}); "
            "save the tokenizer beside the checkpoint"
        )
    return AutoTokenizer.from_pretrained(directory, local_files_only=True)
