"""Decode speed: our on-device loop against HF transformers `generate`.

    python scripts/bench_decode.py                       # ~130M LLaMA, float32, CPU
    python scripts/bench_decode.py --preset=gemma3-270m  # Gemma 3 270M's shape, float32, CPU
    python scripts/bench_decode.py --preset=llama2-7b --dtype=bfloat16   # on a GPU/TPU

The default compares greedy decoding of the same random weights (prompt 64 tokens,
128 new tokens, no EOS so both run to the end) at batch 1 and 16 and prints compile
time, steady-state tokens/s of both, and as its last line
`decode speedup batch1=X.XX batch16=Y.YY` (ours / HF). `--preset=gemma3-270m` does the
same for the shape of Gemma 3 270M (18 layers, 5 sliding-window : 1 full, vocabulary
262,144); its window (512) is longer than the default 192 tokens, so the sliding layers
attend like full ones here (pass e.g. --new_tokens=512 to decode past it).

`--preset=llama2-7b` times only ours (random weights, no checkpoint needed): ms per
decode step at batch 1, 16 and 64, and at batch 1 the fraction of the memory-bandwidth
limit reached: (parameter bytes / measured device copy bandwidth) / step time.
"""

from __future__ import annotations

import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from pretty_jax.checkpoints import loading
from pretty_jax.engine.generator import DecodeConfig, Generator
from pretty_jax.models import Model, init_model, llama
from pretty_jax.models.hf_config import SpecialTokens
from pretty_jax.models.rope import RopeConfig

_PRESET = flags.DEFINE_enum(
    "preset", "llama-130m", ["llama-130m", "gemma3-270m", "llama2-7b"], "Model shape to time."
)
_DTYPE = flags.DEFINE_enum("dtype", "float32", list(loading.DTYPES), "Parameter dtype.")
_PROMPT_LEN = flags.DEFINE_integer("prompt_len", 64, "Prompt tokens per example.")
_NEW_TOKENS = flags.DEFINE_integer("new_tokens", 128, "Tokens generated per example.")
_REPEATS = flags.DEFINE_integer("repeats", 2, "Timed runs per measurement (the best counts).")

_LLAMA = dict(model_type="llama", vocab_size=32000, max_position_embeddings=4096, rms_norm_eps=1e-5)
SHAPES = {
    "llama-130m": _LLAMA | dict(
        hidden_size=768, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=12
    ),
    "llama2-7b": _LLAMA | dict(
        hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32
    ),
    "gemma3-270m": dict(
        model_type="gemma3_text", vocab_size=262144, hidden_size=640, intermediate_size=2048,
        num_hidden_layers=18, num_attention_heads=4, num_key_value_heads=1, head_dim=256,
        query_pre_attn_scalar=256, sliding_window=512, max_position_embeddings=32768,
        layer_types=(["sliding_attention"] * 5 + ["full_attention"]) * 3,
        rope_parameters=dict(
            full_attention=dict(rope_type="default", rope_theta=1_000_000.0),
            sliding_attention=dict(rope_type="default", rope_theta=10_000.0),
        ),
    ),
}


def hf_config_dict(preset: str) -> dict:
    return dict(bos_token_id=1, eos_token_id=None, pad_token_id=0, **SHAPES[preset])


def _best_time(run, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def _prompts(batch: int, length: int) -> list[list[int]]:
    rng = np.random.default_rng(batch)
    return [[1] + rng.integers(3, 32000, length - 1).tolist() for _ in range(batch)]


def time_ours(model: Model, batch: int, new_tokens: int) -> tuple[float, float]:
    """(first call incl. compilation, best steady-state call) in seconds."""
    generator = Generator(model, batch_size=batch)
    prompts = _prompts(batch, _PROMPT_LEN.value)
    config = DecodeConfig(max_new_tokens=new_tokens)
    start = time.perf_counter()
    first = generator.generate(prompts, config=config)
    first_call = time.perf_counter() - start
    assert all(len(g.tokens) == new_tokens for g in first), "a row stopped early"
    return first_call, _best_time(lambda: generator.generate(prompts, config=config), _REPEATS.value)


def time_hf(hf_model, batch: int, new_tokens: int) -> float:
    import torch

    ids = torch.tensor(_prompts(batch, _PROMPT_LEN.value))
    mask = torch.ones_like(ids)

    def run():
        with torch.no_grad():
            out = hf_model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, do_sample=False, pad_token_id=0
            )
        assert out.shape[1] == ids.shape[1] + new_tokens

    run()  # warm-up
    return _best_time(run, _REPEATS.value)


def compare_with_hf() -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    settings = hf_config_dict(_PRESET.value)
    hf_config = AutoConfig.for_model(settings.pop("model_type"), **settings)
    hf_model = AutoModelForCausalLM.from_config(hf_config, dtype=getattr(torch, _DTYPE.value)).eval()
    with tempfile.TemporaryDirectory() as directory:
        hf_model.save_pretrained(directory)
        ours = loading.load_model(directory, _DTYPE.value)
    parameters = sum(p.numel() for p in hf_model.parameters())
    print(f"{_PRESET.value}: {parameters / 1e6:.0f}M parameters, {_DTYPE.value}, {jax.devices()[0].platform}, "
          f"torch threads {torch.get_num_threads()}; prompt {_PROMPT_LEN.value}, {_NEW_TOKENS.value} new tokens")
    speedups = {}
    for batch in (1, 16):
        first, ours_time = time_ours(ours, batch, _NEW_TOKENS.value)
        hf_time = time_hf(hf_model, batch, _NEW_TOKENS.value)
        tokens = batch * _NEW_TOKENS.value
        speedups[batch] = hf_time / ours_time
        print(f"batch {batch:2d}: compile {first - ours_time:5.1f}s | ours {tokens / ours_time:7.1f} tok/s "
              f"| HF generate {tokens / hf_time:7.1f} tok/s | speedup {speedups[batch]:.2f}")
    print(f"decode speedup batch1={speedups[1]:.2f} batch16={speedups[16]:.2f}")


def copy_bandwidth(num_bytes: int = 2**30) -> float:
    """Bytes per second a device copy reads + writes."""
    x = jnp.ones((num_bytes // 4,), jnp.float32)
    copy = jax.jit(lambda a: a * 1.0)
    copy(x).block_until_ready()
    seconds = _best_time(lambda: copy(x).block_until_ready(), 5)
    return 2 * num_bytes / seconds


def time_large_model() -> None:
    where = "preset"
    config = llama.config_from_hf(hf_config_dict(_PRESET.value), where)
    config = config.__class__(**(vars(config) | dict(rope=RopeConfig(), special_tokens=SpecialTokens(1, (), 0))))
    graphdef, params = init_model(config, loading.DTYPES[_DTYPE.value], seed=0)
    model = Model(config=config, graphdef=graphdef, params=params)
    param_bytes = sum(x.nbytes for x in jax.tree.leaves(params))
    bandwidth = copy_bandwidth()
    print(f"{_PRESET.value}: {param_bytes / 2**30:.1f} GiB of parameters ({_DTYPE.value}) on {jax.devices()[0]}, "
          f"copy bandwidth {bandwidth / 1e9:.0f} GB/s")
    for batch in (1, 16, 64):
        _, with_steps = time_ours(model, batch, _NEW_TOKENS.value)
        _, prefill_only = time_ours(model, batch, 1)
        step = (with_steps - prefill_only) / (_NEW_TOKENS.value - 1)
        line = f"batch {batch:2d}: {step * 1e3:.2f} ms/step, prefill {prefill_only * 1e3:.0f} ms"
        if batch == 1:
            line += f", bandwidth fraction {(param_bytes / bandwidth) / step:.2f}"
        print(line)


def main(argv: list[str]) -> None:
    del argv
    if _PRESET.value == "llama2-7b":
        time_large_model()
    else:
        compare_with_hf()


if __name__ == "__main__":
    app.run(main)
