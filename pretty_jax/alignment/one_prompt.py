"""One prompt and one prior, looked at as the paper's Fig. 2 does for a whole test set:
what the foundation model continues with and without the prior, its most probable next
tokens after the prompt and after the prior, and the same for an SFT model.

The prior is text, tokenised as the answer's start continuing the prompt (after a
separator), as the experiments tokenise word priors (`continuation_ids`). Next-token
probabilities are a float32 softmax of the last position's logits (`forward(..., last_only=True)`);
continuations are greedy (`Generator`). The SFT model reads the same prompt text,
tokenised by its own tokenizer.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import unicodedata
from typing import Sequence

import jax
import jax.numpy as jnp

from pretty_jax.alignment.statistics import top_tokens
from pretty_jax.checkpoints.tokenizer import continuation_ids
from pretty_jax.engine.generator import DecodeConfig, Generator
from pretty_jax.engine.strategies import Greedy
from pretty_jax.models import Model, forward


@dataclasses.dataclass(frozen=True)
class NextTokens:
    """The k most probable next tokens at one point, most probable first: ids, their
    text as they continue the context, and probabilities."""

    ids: tuple[int, ...]
    texts: tuple[str, ...]
    probabilities: tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class ModelLook:
    """What one model does with the prompt: its next tokens after the prompt and after
    the prompt + prior, and its greedy continuations (`with_prior` starts with the
    prior; None when not asked for)."""

    name: str
    after_prompt: NextTokens
    after_prior: NextTokens
    continuation: str
    with_prior: str | None
    logits_after: tuple[jax.Array, jax.Array]  # [V] float32 after the prompt, after the prior


@dataclasses.dataclass(frozen=True)
class OnePrompt:
    prompt: str
    prompt_tokens: int
    prior: str
    prior_tokens: tuple[str, ...]
    max_new_tokens: int
    foundation: ModelLook
    sft: ModelLook | None = None


@functools.partial(jax.jit, static_argnums=0)
def _last_logits(graphdef, params, tokens_1T: jax.Array) -> jax.Array:
    """Logits [V] float32 of the next token after one unpadded row [1, T]."""
    positions = jnp.arange(tokens_1T.shape[1])[None]
    logits_1V, _ = forward(graphdef, params, tokens_1T, positions, jnp.ones_like(tokens_1T), last_only=True)
    return logits_1V[0].astype(jnp.float32)


def token_texts(tokenizer, context: Sequence[int], ids: Sequence[int]) -> tuple[str, ...]:
    """Each token of `ids` as text continuing `context` (so a word-start token keeps its
    space); the token's own piece where decoding changes the context's text."""
    before = tokenizer.decode(list(context))
    texts = []
    for token in ids:
        after = tokenizer.decode(list(context) + [int(token)])
        texts.append(after[len(before):] if after.startswith(before) else tokenizer.convert_ids_to_tokens(int(token)))
    return tuple(texts)


def next_tokens(tokenizer, context: Sequence[int], logits_V: jax.Array, k: int) -> NextTokens:
    ids, logprobs = top_tokens(logits_V, k)
    ids = [int(i) for i in ids]
    return NextTokens(tuple(ids), token_texts(tokenizer, context, ids),
                      tuple(float(p) for p in jnp.exp(logprobs)))


def look(name: str, model: Model, tokenizer, prompt: str, prior: str, separator: str, top_k: int,
         max_new_tokens: int, with_prior: bool) -> tuple[ModelLook, list[int], list[int]]:
    """`name`'s look at `prompt` (+ `prior`); also returns the prompt ids and prior ids."""
    prompt_ids = tokenizer(prompt).input_ids
    prior_ids = continuation_ids(tokenizer, prompt, prior, separator)
    logits = tuple(_last_logits(model.graphdef, model.params, jnp.asarray([ids], jnp.int32))
                   for ids in (prompt_ids, prompt_ids + prior_ids))
    generator = Generator(model, tokenizer, batch_size=2)
    rows = [prompt_ids, prompt_ids] if with_prior else [prompt_ids]
    priors = [[], prior_ids] if with_prior else [[]]
    config = DecodeConfig(max_new_tokens=max_new_tokens, strategy=Greedy(), overflow="error")
    generations = generator.generate(rows, priors, config)
    return ModelLook(
        name,
        next_tokens(tokenizer, prompt_ids, logits[0], top_k),
        next_tokens(tokenizer, prompt_ids + prior_ids, logits[1], top_k),
        generations[0].answer_text,
        generations[1].answer_text if with_prior else None,
        logits,
    ), prompt_ids, prior_ids


def look_at_one_prompt(foundation: tuple[Model, object], prompt: str, prior: str, separator: str = " ",
                       top_k: int = 10, max_new_tokens: int = 32, sft: tuple[Model, object] | None = None) -> OnePrompt:
    """Both models' look at one prompt; `foundation` and `sft` are (model, tokenizer)."""
    model, tokenizer = foundation
    base, prompt_ids, prior_ids = look("foundation", model, tokenizer, prompt, prior, separator, top_k,
                                       max_new_tokens, with_prior=True)
    sft_look = None
    if sft is not None:
        sft_look, _, _ = look("SFT model", *sft, prompt, prior, separator, top_k, max_new_tokens, with_prior=False)
    return OnePrompt(prompt, len(prompt_ids), prior, token_texts(tokenizer, prompt_ids, prior_ids) if prior_ids
                     else (), max_new_tokens, base, sft_look)


def foundation_rank(result: OnePrompt, point: int) -> int:
    """The rank (1 = most probable) the foundation gives the SFT model's most probable
    token at `point` (0: after the prompt, 1: after the prior); the models must share
    a vocabulary."""
    sft_choice = jnp.argmax(result.sft.logits_after[point])
    base = result.foundation.logits_after[point]
    return int(jnp.sum(base > base[sft_choice])) + 1


# -- the terminal table --------------------------------------------------------------


def shown(text: str) -> str:
    """A string as a JSON literal: quotes show its spaces, escapes its newlines."""
    return json.dumps(text, ensure_ascii=False)


def width(text: str) -> int:
    """Columns a string takes in a terminal (wide East Asian characters take two)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 0 if unicodedata.combining(c) else 1 for c in text)


def pad(text: str, columns: int) -> str:
    return text + " " * (columns - width(text))


def render(result: OnePrompt, same_vocabulary: bool = False) -> str:
    """The look as text: prompt and prior, the continuations, and an aligned table of
    the top-k next tokens (rank, then token and probability per model and point)."""
    lines = [f"prompt ({_count(result.prompt_tokens, 'token')}): {shown(result.prompt)}",
             f"prior: {shown(result.prior)} = {_count(len(result.prior_tokens), 'token')} after the prompt: "
             + " ".join(shown(t) for t in result.prior_tokens), "",
             f"greedy continuation (at most {result.max_new_tokens} new tokens):"]
    continuations = [("foundation", result.foundation.continuation),
                     ("foundation + prior", result.foundation.with_prior)]
    if result.sft is not None:
        continuations.append(("SFT model", result.sft.continuation))
    label_width = max(len(label) for label, _ in continuations)
    lines += [f"  {label:<{label_width}}  {shown(text)}" for label, text in continuations]
    looks = [result.foundation] + ([result.sft] if result.sft is not None else [])
    columns = [(f"{m.name} after the prompt", m.after_prompt) for m in looks]
    columns += [(f"{m.name} after the prior", m.after_prior) for m in looks]
    lines += ["", f"most probable next tokens (top {len(columns[0][1].ids)}):", _table(columns)]
    if result.sft is not None and same_vocabulary:
        lines += ["", "the SFT model's most probable token is the foundation's "
                  f"rank {foundation_rank(result, 0)} after the prompt, rank {foundation_rank(result, 1)} after the prior"]
    return "\n".join(lines)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _table(columns: Sequence[tuple[str, NextTokens]]) -> str:
    cells = [[(shown(text), f"{p:.4f}") for text, p in zip(tokens.texts, tokens.probabilities)]
             for _, tokens in columns]
    widths = [max([width(title)] + [width(t) + 2 + len(p) for t, p in column]) for (title, _), column in
              zip(columns, cells)]
    token_widths = [max(width(t) for t, _ in column) for column in cells]
    rows = ["  rank  " + "   ".join(pad(title, w) for (title, _), w in zip(columns, widths))]
    for rank in range(len(cells[0])):
        row = [pad(pad(column[rank][0], tw) + "  " + column[rank][1], w)
               for column, tw, w in zip(cells, token_widths, widths)]
        rows.append(f"  {rank + 1:>4}  " + "   ".join(row))
    return "\n".join(line.rstrip() for line in rows)
