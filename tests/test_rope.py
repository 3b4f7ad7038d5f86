"""Our RoPE frequencies equal transformers' for every supported rope type, and the
HF config forms (old `rope_scaling`, new `rope_parameters`) read the same."""

from __future__ import annotations

import numpy as np
import pytest

from pretty_jax.core.errors import ConfigError
from pretty_jax.models.rope import RopeConfig, inverse_frequencies, rope_config_from_hf

torch = pytest.importorskip("torch")

CASES = {
    "default": dict(rope_theta=10000.0, rope_type="default"),
    "linear": dict(rope_theta=10000.0, rope_type="linear", factor=4.0),
    "llama3": dict(
        rope_theta=500000.0, rope_type="llama3", factor=8.0, low_freq_factor=1.0,
        high_freq_factor=4.0, original_max_position_embeddings=8192,
    ),
}


@pytest.mark.parametrize("rope_type", CASES)
def test_inverse_frequencies_equal_transformers(rope_type):
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    hf = LlamaConfig(hidden_size=4096, num_attention_heads=32, rope_parameters=dict(CASES[rope_type]))
    if rope_type == "default":
        expected, _ = LlamaRotaryEmbedding.compute_default_rope_parameters(hf)
    else:
        expected, _ = ROPE_INIT_FUNCTIONS[rope_type](hf, "cpu")
    ours = inverse_frequencies(rope_config_from_hf(hf.to_dict(), "config.json"), 128)
    np.testing.assert_allclose(ours, expected.numpy(), rtol=1e-6)
    if rope_type != "default":
        plain = inverse_frequencies(RopeConfig(theta=CASES[rope_type]["rope_theta"]), 128)
        assert not np.allclose(ours, plain), "scaling must change the frequencies"


def test_old_style_rope_scaling_reads_like_rope_parameters():
    old = {"rope_theta": 500000.0, "rope_scaling": {"type": "linear", "factor": 2.0}}
    new = {"rope_parameters": {"rope_type": "linear", "rope_theta": 500000.0, "factor": 2.0}}
    assert rope_config_from_hf(old, "a") == rope_config_from_hf(new, "b")


def test_unsupported_rope_type_is_refused_by_name():
    with pytest.raises(ConfigError, match=r"config.json: rope type 'yarn' is not supported.*llama3"):
        rope_config_from_hf({"rope_parameters": {"rope_type": "yarn", "factor": 2.0}}, "config.json")
