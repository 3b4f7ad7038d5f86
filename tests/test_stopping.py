"""The stop-string automata accept exactly when the concatenated token texts first
contain a stop string (checked against str.find on random token sequences)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from pretty_jax.core.errors import UserError
from pretty_jax.engine.stopping import StopStrings, StopTables

TOKEN_TEXTS = ["", "a", "b", "ab", "ba", "\n", "a\n", "\n\n", "x", "aab", "bab", "\nx"]


@pytest.mark.parametrize("stops", [("\n",), ("ab",), ("aab", "\n\n"), ("abab", "b\nx")])
def test_automaton_matches_str_find(stops):
    matcher = StopStrings(stops, TOKEN_TEXTS)
    tables = StopTables.of(matcher, len(TOKEN_TEXTS))
    rng = np.random.default_rng(0)
    sequences = rng.integers(0, len(TOKEN_TEXTS), size=(64, 10))
    states = jnp.zeros((64, len(stops)), jnp.int32)
    first_hit = np.full(64, -1)
    for step in range(10):
        states, hit = tables.advance(states, jnp.asarray(sequences[:, step], jnp.int32))
        newly = np.asarray(hit) & (first_hit < 0)
        first_hit[newly] = step
    for row, sequence in enumerate(sequences):
        texts = [TOKEN_TEXTS[t] for t in sequence]
        expected = next((i for i in range(10) if any(s in "".join(texts[: i + 1]) for s in stops)), -1)
        assert first_hit[row] == expected, (row, texts)


def test_trim_cuts_before_the_earliest_stop_string():
    matcher = StopStrings(("\n", "END"), TOKEN_TEXTS)
    assert matcher.trim("one END two\nthree") == ("one ", True)
    assert matcher.trim("no stop here") == ("no stop here", False)


def test_empty_stop_string_is_refused():
    with pytest.raises(UserError, match="empty stop string"):
        StopStrings(("",), TOKEN_TEXTS)
