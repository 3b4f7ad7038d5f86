"""Prior tokens: turning prior text (a word, a reference prefix) into the token ids
that continue a prompt, with each tokenizer's leading-space convention.

Text that continues a prompt is tokenised in context: ids(prompt + separator + text)
minus ids(prompt). A SentencePiece tokenizer (LLaMA) then yields "▁Bonjour" and a
byte-level BPE tokenizer (BLOOM) "ĠBonjour" — the tokens the model itself would
produce after the prompt — where tokenising "Bonjour" alone would give a word-start
token for one and a mid-word token for the other.
"""

from __future__ import annotations


def continuation_ids(tokenizer, prompt: str, text: str, separator: str = " ") -> list[int]:
    """Token ids of `text` as it continues `prompt` after `separator`."""
    base = tokenizer(prompt, add_special_tokens=False).input_ids
    joint = tokenizer(prompt + separator + text, add_special_tokens=False).input_ids
    if joint[: len(base)] == base:
        return joint[len(base) :]
    # The prompt's last token merged with the continuation's first: keep the prompt's
    # tokens and tokenise the continuation on its own.
    return tokenizer(separator + text, add_special_tokens=False).input_ids
