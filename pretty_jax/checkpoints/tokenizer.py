"""Tokenizers: loading a checkpoint's (transformers' fast tokenizer, offline), and
training small ones with `tokenizers` for tiny checkpoints and the demo's world."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from pretty_jax.checkpoints.sample_text import SENTENCES
from pretty_jax.core.errors import UserError

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
