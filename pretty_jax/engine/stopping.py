"""Stop strings (e.g. a newline) detected on device, without a host sync per token.

Each stop string becomes a small automaton over characters (Knuth–Morris–Pratt); its
transition table over whole tokens, `[states, V]`, is built once on the host from
every token's text. In the decode loop a row's state advances by one gather per token,
and the row stops when a string's automaton accepts. Token texts are decoded one
token at a time, which is not always how a sequence decodes (SentencePiece drops a
leading space, a character can span byte tokens), so the host also trims the final
text at the first stop string (`trim`): the device check stops early, the host check
makes the text exact.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from pretty_jax.core.errors import UserError


def _failure_function(pattern: str) -> list[int]:
    fail = [0] * len(pattern)
    k = 0
    for i in range(1, len(pattern)):
        while k and pattern[i] != pattern[k]:
            k = fail[k - 1]
        if pattern[i] == pattern[k]:
            k += 1
        fail[i] = k
    return fail


def _advance(pattern: str, fail: list[int], state: int, text: str) -> int:
    """The automaton state after reading `text` from `state`; len(pattern) accepts and
    is absorbing."""
    for char in text:
        if state == len(pattern):
            return state
        while state and pattern[state] != char:
            state = fail[state - 1]
        if pattern[state] == char:
            state += 1
    return state


def transition_table(pattern: str, token_texts: Sequence[str]) -> np.ndarray:
    """[len(pattern) + 1, V] int32: next state for each (state, token)."""
    fail = _failure_function(pattern)
    alphabet = set(pattern)
    table = np.zeros((len(pattern) + 1, len(token_texts)), np.int32)
    table[len(pattern)] = len(pattern)
    for token, text in enumerate(token_texts):
        if not text:
            table[: len(pattern), token] = np.arange(len(pattern))
        elif alphabet.intersection(text):
            for state in range(len(pattern)):
                table[state, token] = _advance(pattern, fail, state, text)
        # else: any character outside the pattern resets to 0, already there.
    return table


def check_stop_strings(stop_strings: Sequence[str]) -> None:
    """Raises UserError, naming the setting, for an empty stop string: it would end every
    output before its first token."""
    if any(not s for s in stop_strings):
        raise UserError(f"stop_strings={','.join(stop_strings)!r}: an empty stop string would end every output at "
                        "once; remove it (a comma at either end, or two in a row, makes one)")


class StopStrings:
    """Automata for a set of stop strings over a vocabulary of token texts.

    tables: [num_stops, M + 1, V] int32, padded to the longest string M.
    accept: [num_stops] int32, each string's accepting state (its length).
    """

    def __init__(self, stop_strings: Sequence[str], token_texts: Sequence[str]):
        check_stop_strings(stop_strings)
        self.stop_strings = tuple(stop_strings)
        longest = max(len(s) for s in stop_strings)
        self.tables = np.zeros((len(stop_strings), longest + 1, len(token_texts)), np.int32)
        for i, pattern in enumerate(stop_strings):
            table = transition_table(pattern, token_texts)
            self.tables[i, : len(pattern) + 1] = table
            self.tables[i, len(pattern) + 1 :] = len(pattern)
        self.accept = np.array([len(s) for s in stop_strings], np.int32)

    @classmethod
    def for_tokenizer(cls, stop_strings: Sequence[str], tokenizer, vocab_size: int) -> "StopStrings":
        """Token texts from the tokenizer; ids beyond it (padded vocabularies) are ''.
        Decoding a 256k vocabulary takes seconds: a caller that decodes many times
        keeps the result (the Generator keeps one per set of strings)."""
        known = min(len(tokenizer), vocab_size)
        texts = tokenizer.batch_decode([[i] for i in range(known)])
        return cls(stop_strings, texts + [""] * (vocab_size - known))

    def trim(self, text: str) -> tuple[str, bool]:
        """`text` up to (not including) its first stop string, and whether one was found."""
        cut = min((i for i in (text.find(s) for s in self.stop_strings) if i >= 0), default=-1)
        return (text, False) if cut < 0 else (text[:cut], True)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class StopTables:
    """`StopStrings` on device, for the decode loops.

    tables: [num_stops, M + 1, V] int32 transition tables; accept: [num_stops] int32
    accepting states. No stop strings: num_stops = 0 (nothing ever matches).
    """

    tables: jax.Array
    accept: jax.Array

    @classmethod
    def of(cls, stop: "StopStrings | None", vocab_size: int) -> "StopTables":
        if stop is None:
            return cls(jnp.zeros((0, 1, vocab_size), jnp.int32), jnp.zeros((0,), jnp.int32))
        return cls(jnp.asarray(stop.tables), jnp.asarray(stop.accept))

    @property
    def num_stops(self) -> int:
        return self.tables.shape[0]

    def advance(self, states_BS: jax.Array, tokens_B: jax.Array) -> tuple[jax.Array, jax.Array]:
        """One token per row: new states [B, S] and whether any stop string matched [B]."""
        stop_index_S = jnp.arange(self.num_stops)
        new_BS = self.tables[stop_index_S[None, :], states_BS, tokens_B[:, None]]
        return new_BS, jnp.any(new_BS == self.accept[None, :], axis=-1)
