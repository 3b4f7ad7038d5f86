"""Writing llama.cpp GGUF files from tiny HF checkpoints, as llama.cpp's
`convert_hf_to_gguf.py` would: its metadata keys, its tokenizer metadata, its tensor
names, LLaMA's Q/K row permutation, and norms/biases kept in F32 when the weight
matrices are quantised. The tests import these files and compare with transformers
loading the same file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

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
HF_TO_GGUF_GLOBAL = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}


def gguf_name(hf_key: str) -> str:
    if hf_key in HF_TO_GGUF_GLOBAL:
        return HF_TO_GGUF_GLOBAL[hf_key]
    _, _, layer, rest = hf_key.split(".", 3)
    return f"blk.{layer}.{HF_TO_GGUF_LAYER[rest]}"


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


def write_gguf(hf_dir: Path, path: Path, tensor_type: str = "F32", architecture: str | None = None) -> Path:
    """Writes the tiny HF checkpoint in `hf_dir` as a GGUF file at `path`.

    tensor_type: "F32", or a type `gguf.quants.quantize` can make (Q8_0, Q4_0, Q4_1)
      for the 2-D weight matrices; 1-D tensors (norms, biases) stay F32 as in llama.cpp.
    architecture: `general.architecture`; default the HF model_type.
    """
    import gguf

    config = json.loads((hf_dir / "config.json").read_text())
    architecture = architecture or config["model_type"]
    writer = gguf.GGUFWriter(path, architecture)
    writer.add_name(f"tiny-{architecture}")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_rope_freq_base(config.get("rope_theta") or config["rope_parameters"]["rope_theta"])
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    if architecture == "llama":
        writer.add_rope_dimension_count(config["hidden_size"] // config["num_attention_heads"])
    writer.add_vocab_size(config["vocab_size"])
    _add_tokenizer(writer, hf_dir, config, "llama" if architecture == "llama" else "gpt2")

    quant = gguf.GGMLQuantizationType[tensor_type]
    for hf_key, array in sorted(load_file(hf_dir / "model.safetensors").items()):
        array = array.astype(np.float32)
        if architecture == "llama" and ".q_proj." in hf_key:
            array = permute_qk(array, config["num_attention_heads"])
        elif architecture == "llama" and ".k_proj." in hf_key:
            array = permute_qk(array, config["num_key_value_heads"])
        if quant == gguf.GGMLQuantizationType.F32 or array.ndim == 1:
            writer.add_tensor(gguf_name(hf_key), array)
        else:
            writer.add_tensor(gguf_name(hf_key), gguf.quants.quantize(array, quant), raw_dtype=quant)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
