"""Attention building blocks against plain NumPy and HF's own helpers."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from pretty_jax.models.bloom import alibi_slopes
from pretty_jax.models.layers import attend


def _numpy_attention(q, k, v, q_pos, k_pos, scale, window=None, slopes=None):
    """One head at a time, with explicit loops over rows and queries."""
    B, T, N, H = q.shape
    K = k.shape[2]
    out = np.zeros_like(q)
    for b in range(B):
        for n in range(N):
            kv_head = n // (N // K)
            for t in range(T):
                scores = np.array([q[b, t, n] @ k[b, s, kv_head] * scale for s in range(k.shape[1])])
                if slopes is not None:
                    scores = scores + slopes[n] * k_pos[b]
                visible = (k_pos[b] >= 0) & (k_pos[b] <= q_pos[b, t])
                if window is not None:
                    visible &= q_pos[b, t] - k_pos[b] < window
                if not visible.any():
                    continue
                weights = np.exp(scores[visible] - scores[visible].max())
                out[b, t, n] = (weights / weights.sum()) @ v[b, visible, kv_head]
    return out


@pytest.mark.parametrize("window,alibi,K", [(None, False, 2), (3, False, 2), (None, True, 2), (None, False, 1), (3, False, 1)])
def test_attend_matches_numpy_with_padding_gqa_window_and_alibi(window, alibi, K):
    """K = 1: a single KV head's keys and values come without a head axis, [B, S, H]."""
    rng = np.random.default_rng(0)
    B, T, N, H = 2, 6, 4, 8
    q = rng.normal(size=(B, T, N, H)).astype(np.float32)
    k = rng.normal(size=(B, T, K, H)).astype(np.float32)
    v = rng.normal(size=(B, T, K, H)).astype(np.float32)
    positions = np.array([[-1, -1, 0, 1, 2, 3], [0, 1, 2, 3, 4, 5]])  # row 0 left-padded
    slopes = alibi_slopes(N) if alibi else None
    as_cached = (lambda x: x[:, :, 0]) if K == 1 else (lambda x: x.transpose(0, 2, 1, 3))
    ours = attend(
        jnp.asarray(q), jnp.asarray(as_cached(k)), jnp.asarray(as_cached(v)),
        jnp.asarray(np.maximum(positions, 0)),
        jnp.asarray(positions), scale=H**-0.5, window=window, alibi_slopes_N=slopes,
    )
    expected = _numpy_attention(q, k, v, np.maximum(positions, 0), positions, H**-0.5, window, slopes)
    real = positions >= 0
    np.testing.assert_allclose(np.asarray(ours)[real], expected[real], atol=1e-5)
    assert np.isfinite(np.asarray(ours)).all()


@pytest.mark.parametrize("num_heads", [4, 6, 12, 32, 112])
def test_alibi_slopes_equal_transformers(num_heads):
    torch = pytest.importorskip("torch")
    from transformers.models.bloom.modeling_bloom import _get_alibi_slopes

    expected = _get_alibi_slopes(num_heads, torch.device("cpu")).numpy()
    np.testing.assert_allclose(alibi_slopes(num_heads), expected, rtol=1e-6)
