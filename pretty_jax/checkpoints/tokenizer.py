"""Tokenizers: loading a checkpoint's (transformers' fast tokenizer, offline), and
training small ones with `tokenizers` for tiny checkpoints and the demo's world."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from pretty_jax.checkpoints.sample_text import SENTENCES
from pretty_jax.core.errors import UserError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


# The JSON files a tokenizer is read from, when present.
TOKENIZER_JSON_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
_RESTORE = "restore it from where the checkpoint came from"


def check_tokenizer_files(directory: Path) -> None:
    """Refuses, naming the file, a checkpoint without tokenizer files, one whose
    tokenizer JSON files are empty, not JSON or not a JSON object, or whose
    tokenizer.json the `tokenizers` library cannot read (transformers would fail with
    a bare error that names no file)."""
    if not any((directory / name).exists() for name in TOKENIZER_FILES):
        raise UserError(
            f"{directory} has no tokenizer files ({', '.join(TOKENIZER_FILES)}); "
            "save the tokenizer beside the checkpoint"
        )
    for name in TOKENIZER_JSON_FILES:
        path = directory / name
        if not path.exists():
            continue
        try:
            data = json.loads(path.read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            problem = "it is empty" if not path.stat().st_size else f"not valid UTF-8 JSON ({e})"
            raise UserError(f"{path}: {problem}; {_RESTORE}") from None
        if not isinstance(data, dict):
            raise UserError(f"{path}: expected a JSON object, found {type(data).__name__}; {_RESTORE}")
    if (directory / "tokenizer.json").exists():
        problem = _tokenizer_json_problem(directory / "tokenizer.json")
        if problem:
            raise UserError(problem)


def _tokenizer_json_problem(path: Path) -> str | None:
    """Why the `tokenizers` library cannot read tokenizer.json at `path`, or None."""
    from tokenizers import Tokenizer

    try:
        Tokenizer.from_file(str(path))
    except Exception as e:  # the Rust library raises a bare Exception
        return f"{path}: not a tokenizer file ({e}); {_RESTORE}"
    return None


def load_tokenizer(directory: Path):
    """The tokenizer saved beside a checkpoint. Never downloads anything. Tokenizer
    files that cannot be loaded are refused naming the file (`check_tokenizer_files`,
    run only when transformers fails, so a good tokenizer is read once), else naming
    the directory's tokenizer files and transformers' reason."""
    from transformers import AutoTokenizer

    if not any((directory / name).exists() for name in TOKENIZER_FILES):
        check_tokenizer_files(directory)
    try:
        return AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except ImportError:  # a tokenizer that needs an optional package says which
        raise
    except Exception as e:  # transformers and tokenizers raise many types for a broken file
        check_tokenizer_files(directory)
        present = ", ".join(name for name in TOKENIZER_FILES if (directory / name).exists())
        raise UserError(
            f"{directory}: its tokenizer ({present}) cannot be loaded ({type(e).__name__}: {e}); {_RESTORE}"
        ) from None


def continuation_ids(tokenizer, prompt: str, text: str, separator: str = " ") -> list[int]:
    """Token ids of `text` as it continues `prompt` after `separator`."""
    base = tokenizer(prompt, add_special_tokens=False).input_ids
    joint = tokenizer(prompt + separator + text, add_special_tokens=False).input_ids
    if joint[: len(base)] == base:
        return joint[len(base) :]
    # The prompt's last token merged with the continuation's first: keep the prompt's
    # tokens and tokenise the continuation on its own.
    return tokenizer(separator + text, add_special_tokens=False).input_ids


SPECIAL_TOKENS = {
    "sentencepiece": dict(unk_token="<unk>", bos_token="<s>", eos_token="</s>"),
    "bytelevel": dict(unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>"),
}


def train_tokenizer(kind: str, texts: Sequence[str] = SENTENCES, vocab_size: int = 400):
    """A fast tokenizer trained on `texts` (default: the built-in sample sentences).

    kind: "sentencepiece" (LLaMA style: `▁` word prefix, byte fallback, BOS added)
      or "bytelevel" (BLOOM / GPT-2 style byte-level BPE, nothing added).
    """
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    special = SPECIAL_TOKENS[kind]
    if kind == "sentencepiece":
        byte_tokens = [f"<0x{i:02X}>" for i in range(256)]
        tokenizer = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
        tokenizer.decoder = decoders.Sequence(
            [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
        )
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=list(special.values()) + byte_tokens, show_progress=False
        )
        tokenizer.train_from_iterator(texts, trainer)
        # The byte tokens are ordinary vocabulary in SentencePiece, not special tokens.
        data = json.loads(tokenizer.to_str())
        data["added_tokens"] = [t for t in data["added_tokens"] if not t["content"].startswith("<0x")]
        tokenizer = Tokenizer.from_str(json.dumps(data))
        bos_id = tokenizer.token_to_id("<s>")
        tokenizer.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos_id)]
        )
    else:
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=list(special.values()),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tokenizer.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **special)
