"""Writing llama.cpp GGUF files from tiny HF checkpoints, as llama.cpp's
`convert_hf_to_gguf.py` would: its metadata keys, its tokenizer metadata, its tensor
names, LLaMA's Q/K row permutation, Gemma's norms stored as 1 + w, and norms/biases
kept in F32 when the weight matrices are quantised. Also a tiny Gemma 3 checkpoint
that its GGUF file describes completely, and files of random K-quant blocks, which
gguf-py cannot quantise to. The tests import these files and compare with
transformers loading the same file. Also what the GGUF test modules share: a cache of
view directories per test (`gguf_cache`) and commands run where torch cannot be
imported (`run_without_torch`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

@pytest.fixture(autouse=True)
def gguf_cache(tmp_path, monkeypatch):
    """Each test gets its own, empty cache of GGUF view directories (and so do the
    commands it runs)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "pretty_jax" / "gguf"


def run_without_torch(code: str) -> subprocess.CompletedProcess:
    """Runs the Python `code` in a new process where `import torch` fails, as in a
    venv without torch. (transformers imports torch whenever it is installed, so
    "torch was not imported" can only be shown where it cannot be: None in
    `sys.modules` makes `import torch` raise and transformers' own check
    `importlib.util.find_spec("torch")` answer None.)"""
    prelude = "import sys\nsys.modules['torch'] = None\n"
    return subprocess.run([sys.executable, "-c", prelude + code], check=False, capture_output=True, text=True)


def run_module_without_torch(module: str, *args: str) -> subprocess.CompletedProcess:
    """`python -m pretty_jax.<module> args` where `import torch` fails."""
    return run_without_torch(
        f"import runpy\nsys.argv = {[module, *args]!r}\n"
        f"runpy.run_module('pretty_jax.{module}', run_name='__main__', alter_sys=True)\n"
    )


# llama.cpp token types (gguf.TokenType).
NORMAL, UNKNOWN, CONTROL, UNUSED, BYTE = 1, 2, 3, 5, 6

HF_TO_GGUF_LAYER = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
# Gemma 3's block tensors where llama.cpp's names differ from LLaMA's. Its HF
# post_attention_layernorm is the norm *after* attention, and llama.cpp's ffn_norm the
# one before the MLP.
HF_TO_GGUF_GEMMA3_LAYER = HF_TO_GGUF_LAYER | {
    "post_attention_layernorm.weight": "post_attention_norm.weight",
    "pre_feedforward_layernorm.weight": "ffn_norm.weight",
    "post_feedforward_layernorm.weight": "post_ffw_norm.weight",
    "self_attn.q_norm.weight": "attn_q_norm.weight",
    "self_attn.k_norm.weight": "attn_k_norm.weight",
}
HF_TO_GGUF_GLOBAL = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}


# HF model_type -> llama.cpp's `general.architecture`, where they differ.
LLAMA_CPP_ARCHITECTURES = {"gemma3_text": "gemma3"}


def gguf_name(hf_key: str, architecture: str = "llama") -> str:
    if hf_key in HF_TO_GGUF_GLOBAL:
        return HF_TO_GGUF_GLOBAL[hf_key]
    _, _, layer, rest = hf_key.split(".", 3)
    block = HF_TO_GGUF_GEMMA3_LAYER if architecture == "gemma3" else HF_TO_GGUF_LAYER
    return f"blk.{layer}.{block[rest]}"


# A tiny Gemma 3 whose GGUF file describes it completely. transformers' GGUF loader
# reads the window, head_dim and the global RoPE base, and builds the rest from
# Gemma3TextConfig's defaults, which llama.cpp hard-codes too: every 6th layer global,
# local RoPE base 10000, no RoPE scaling; and query_pre_attn_scalar 256, which is
# head_dim, as llama.cpp scales attention. A window shorter than the test prompts.
TINY_GEMMA3 = {
    "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 6, "num_attention_heads": 2,
    "num_key_value_heads": 1, "head_dim": 256, "query_pre_attn_scalar": 256, "sliding_window": 8,
    "rms_norm_eps": 1e-5, "max_position_embeddings": 256,
    "rope_parameters": {
        "full_attention": {"rope_type": "default", "rope_theta": 100000.0},
        "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
    },
}


def build_tiny_gemma3(out_dir: Path, seed: int = 0) -> Path:
    """Writes a random `Gemma3ForCausalLM` of shape `TINY_GEMMA3`, with the tokenizer
    and weight randomisation of the tiny presets (`pretty_jax.checkpoints.tiny`)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from pretty_jax.checkpoints.tiny import randomize_
    from pretty_jax.checkpoints.tokenizer import train_tokenizer

    tokenizer = train_tokenizer("sentencepiece")
    config = AutoConfig.for_model(
        "gemma3_text", vocab_size=-(-len(tokenizer) // 64) * 64, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **TINY_GEMMA3,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    randomize_(model, seed)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def permute_qk(weights: np.ndarray, num_heads: int) -> np.ndarray:
    """llama.cpp's `LlamaModel.permute`: each head's rotary halves interleaved."""
    return (
        weights.reshape(num_heads, 2, weights.shape[0] // num_heads // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _vocabulary(hf_dir: Path, vocab_size: int) -> tuple[list[str], list[int], list[str]]:
    """Tokens by id (padded to the model's vocabulary with [PADi], as llama.cpp does),
    their llama.cpp types, and the BPE merges."""
    data = json.loads((hf_dir / "tokenizer.json").read_text())
    by_id = {index: token for token, index in data["model"]["vocab"].items()}
    special = set()
    for added in data["added_tokens"]:
        by_id[added["id"]] = added["content"]
        if added["special"]:
            special.add(added["content"])
    tokens = [by_id.get(i, f"[PAD{i}]") for i in range(vocab_size)]
    types = []
    for token in tokens:
        if token == "<unk>":
            types.append(UNKNOWN)
        elif token in special:
            types.append(CONTROL)
        elif token.startswith("[PAD"):
            types.append(UNUSED)
        elif token.startswith("<0x") and len(token) == 6:
            types.append(BYTE)
        else:
            types.append(NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
    return tokens, types, merges


def _add_tokenizer(writer, hf_dir: Path, config: dict, tokenizer_model: str) -> None:
    tokens, types, merges = _vocabulary(hf_dir, config["vocab_size"])
    writer.add_tokenizer_model(tokenizer_model)
    if tokenizer_model == "gpt2":
        writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    if tokenizer_model == "llama":
        writer.add_token_scores([-float(i) for i in range(len(tokens))])
        writer.add_unk_token_id(tokens.index("<unk>"))
        writer.add_add_bos_token(True)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(config["bos_token_id"])
    writer.add_eos_token_id(config["eos_token_id"])
    if config.get("pad_token_id") is not None:
        writer.add_pad_token_id(config["pad_token_id"])


def _write(path: Path, architecture: str, config: dict, hf_dir: Path, tensors, metadata: dict | None = None) -> Path:
    """Writes metadata from an HF `config`, the tokenizer of `hf_dir`, and `tensors`:
    (llama.cpp name, array, ggml type name) with float32 arrays for F32 and raw
    uint8 blocks [rows, bytes] otherwise. `metadata`: more keys, or new values for
    the keys above (a str, float32, uint32 or array)."""
    import gguf

    writer = gguf.GGUFWriter(path, architecture)
    writer.add_name(f"tiny-{architecture}")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    rope = config.get("rope_parameters") or {}
    writer.add_rope_freq_base(config.get("rope_theta") or rope.get("full_attention", rope)["rope_theta"])
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    if architecture == "llama":
        writer.add_rope_dimension_count(config["hidden_size"] // config["num_attention_heads"])
    if architecture == "gemma3":  # as llama.cpp's Gemma3Model writes them
        writer.add_key_length(config["head_dim"])
        writer.add_value_length(config["head_dim"])
        writer.add_rope_freq_base_swa(rope["sliding_attention"]["rope_theta"])
        writer.add_sliding_window(config["sliding_window"])
    writer.add_vocab_size(config["vocab_size"])
    _add_tokenizer(writer, hf_dir, config, "gpt2" if architecture == "qwen2" else "llama")
    for key, value in (metadata or {}).items():
        if isinstance(value, str):
            writer.add_string(key, value)
        elif isinstance(value, float):
            writer.add_float32(key, value)
        elif isinstance(value, int):
            writer.add_uint32(key, value)
        else:
            writer.add_array(key, value)
    for name, array, type_name in tensors:
        if type_name == "F32":
            writer.add_tensor(name, array)
        else:
            writer.add_tensor(name, array, raw_dtype=gguf.GGMLQuantizationType[type_name])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


# ggml's integer tensor types and the numpy dtype each stores.
INTEGER_TYPES = {"I8": np.int8, "I16": np.int16, "I32": np.int32}


def write_gguf(
    hf_dir: Path, path: Path, tensor_type: str = "F32", architecture: str | None = None,
    types: dict[str, str] | None = None, metadata: dict | None = None,
) -> Path:
    """Writes the tiny HF checkpoint in `hf_dir` as a GGUF file at `path`.

    tensor_type: "F32", or a type `gguf.quants.quantize` can make (Q8_0, Q4_0, Q4_1,
      Q5_0, ...) for the 2-D weight matrices; 1-D tensors (norms, biases) stay F32 as
      in llama.cpp; an integer type of `INTEGER_TYPES` stores round(100 w).
    architecture: `general.architecture`; default llama.cpp's name of the HF model_type.
    types: llama.cpp tensor name -> type, overriding `tensor_type` for that tensor.
    metadata: metadata key -> value, added to (or replacing) what llama.cpp writes.
    """
    import gguf

    config = json.loads((hf_dir / "config.json").read_text())
    architecture = architecture or LLAMA_CPP_ARCHITECTURES.get(config["model_type"], config["model_type"])
    tensors = []
    for hf_key, array in sorted(load_file(hf_dir / "model.safetensors").items()):
        array = array.astype(np.float32)
        if architecture == "llama" and ".q_proj." in hf_key:
            array = permute_qk(array, config["num_attention_heads"])
        elif architecture == "llama" and ".k_proj." in hf_key:
            array = permute_qk(array, config["num_key_value_heads"])
        elif architecture == "gemma3" and hf_key.endswith("norm.weight"):
            array = array + np.float32(1)  # Gemma's RMSNorm scales by 1 + w; llama.cpp stores 1 + w
        name = gguf_name(hf_key, architecture)
        type_name = (types or {}).get(name, "F32" if array.ndim == 1 else tensor_type)
        if type_name in INTEGER_TYPES:  # llama.cpp's integer tensors (never a weight)
            array = np.round(array * 100).astype(INTEGER_TYPES[type_name])
        elif type_name != "F32":
            array = gguf.quants.quantize(array, gguf.GGMLQuantizationType[type_name])
        tensors.append((name, array, type_name))
    return _write(path, architecture, config, hf_dir, tensors, metadata)


# Byte offsets of the f16 scales in each block type: random bytes there could be
# NaN or inf, so random blocks get finite values there.
F16_FIELDS = {"Q8_0": [0], "Q4_0": [0], "Q4_1": [0, 2], "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208]}
# Block size and bytes per block of the types above.
BLOCKS = {"Q8_0": (32, 34), "Q4_0": (32, 18), "Q4_1": (32, 20), "Q4_K": (256, 144), "Q5_K": (256, 176), "Q6_K": (256, 210)}


def random_blocks(type_name: str, num_blocks: int, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    """Random raw blocks [num_blocks, type_size] of a quantised type, with finite f16
    scales in [-scale, scale]."""
    raw = rng.integers(0, 256, size=(num_blocks, BLOCKS[type_name][1]), dtype=np.uint8)
    for offset in F16_FIELDS[type_name]:
        scales = rng.uniform(-scale, scale, size=(num_blocks, 1)).astype("<f2")
        raw[:, offset : offset + 2] = scales.view(np.uint8)
    return raw


# Block scales that give random K-quant weights a standard deviation near 0.1.
_K_QUANT_SCALES = {"Q4_K": 6e-4, "Q5_K": 3e-4, "Q6_K": 1.2e-4}


def write_random_k_quant_gguf(hf_dir: Path, path: Path, seed: int = 0) -> Path:
    """A LLaMA GGUF of random K-quant weights, laid out as llama.cpp's Q4_K_M mix
    (Q6_K embedding and head, Q5_K down projections, Q4_K the rest), with the
    tokenizer of the tiny LLaMA checkpoint `hf_dir`. K-quant rows hold multiples of 256
    values, so its width is 256. gguf-py cannot quantise to K-quants: the blocks are
    random bytes."""
    rng = np.random.default_rng(seed)
    config = json.loads((hf_dir / "config.json").read_text()) | {
        "hidden_size": 256, "intermediate_size": 256, "num_attention_heads": 4, "num_key_value_heads": 2,
    }
    D, F, V = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    K = D // config["num_attention_heads"] * config["num_key_value_heads"]
    shapes = {"token_embd.weight": (V, D), "output.weight": (V, D), "output_norm.weight": (D,)}
    for i in range(config["num_hidden_layers"]):
        shapes |= {
            f"blk.{i}.attn_norm.weight": (D,), f"blk.{i}.ffn_norm.weight": (D,),
            f"blk.{i}.attn_q.weight": (D, D), f"blk.{i}.attn_k.weight": (K, D),
            f"blk.{i}.attn_v.weight": (K, D), f"blk.{i}.attn_output.weight": (D, D),
            f"blk.{i}.ffn_gate.weight": (F, D), f"blk.{i}.ffn_up.weight": (F, D),
            f"blk.{i}.ffn_down.weight": (D, F),
        }
    tensors = []
    for name, shape in shapes.items():
        if len(shape) == 1:
            tensors.append((name, (1 + 0.1 * rng.standard_normal(shape)).astype(np.float32), "F32"))
            continue
        type_name = "Q6_K" if "token_embd" in name or "output" in name.split(".")[0] else (
            "Q5_K" if "ffn_down" in name else "Q4_K"
        )
        blocks = random_blocks(type_name, shape[0] * shape[1] // 256, rng, _K_QUANT_SCALES[type_name])
        tensors.append((name, blocks.reshape(shape[0], -1), type_name))
    return _write(path, "llama", config, hf_dir, tensors)
