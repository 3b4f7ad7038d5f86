"""llama.cpp's tensor names and layouts -> HF's: the name tables, and undoing what
llama.cpp changed in a tensor (LLaMA's Q/K row permutation, Gemma's norms stored as
1 + w)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

if TYPE_CHECKING:
    from pretty_jax.checkpoints.gguf.architectures import Architecture

LLAMA_BLOCK_TENSORS = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.bias": "self_attn.v_proj.bias",
    "attn_output.bias": "self_attn.o_proj.bias",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
    "ffn_gate.bias": "mlp.gate_proj.bias",
    "ffn_up.bias": "mlp.up_proj.bias",
    "ffn_down.bias": "mlp.down_proj.bias",
}
# Gemma 3's block: four norms per block and norms on queries and keys. HF's
# post_attention_layernorm is the norm *after* attention here, and llama.cpp's ffn_norm
# the one before the MLP.
GEMMA3_BLOCK_TENSORS = {
    **LLAMA_BLOCK_TENSORS,
    "post_attention_norm.weight": "post_attention_layernorm.weight",
    "ffn_norm.weight": "pre_feedforward_layernorm.weight",
    "post_ffw_norm.weight": "post_feedforward_layernorm.weight",
    "attn_q_norm.weight": "self_attn.q_norm.weight",
    "attn_k_norm.weight": "self_attn.k_norm.weight",
}
# Tensors outside the blocks, llama.cpp's name -> HF's.
LLAMA_GLOBAL_TENSORS = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}




def hf_name(architecture: Architecture, gguf_name: str) -> str:
    """The HF name of a llama.cpp tensor; names the table lacks pass through as they
    are, so the layout check lists them as unmapped."""
    if gguf_name in architecture.global_tensors:
        return architecture.global_tensors[gguf_name]
    parts = gguf_name.split(".", 2)
    if len(parts) == 3 and parts[0] == "blk" and parts[2] in architecture.block_tensors:
        return f"model.layers.{parts[1]}.{architecture.block_tensors[parts[2]]}"
    return gguf_name


def _unpermute_qk(rows: np.ndarray, num_heads: int) -> np.ndarray:
    """Inverse of llama.cpp's `LlamaModel.permute`: per head, rows (i, half) stored
    interleaved [i0h0, i0h1, i1h0, ...] go back to [half 0 rows, half 1 rows]."""
    return (
        rows.reshape(num_heads, rows.shape[0] // num_heads // 2, 2, *rows.shape[1:])
        .swapaxes(1, 2)
        .reshape(rows.shape)
    )


def undo_llama_cpp_changes(
    architecture: Architecture, hf_key: str, array: np.ndarray, config: Mapping[str, Any]
) -> np.ndarray:
    """The tensor `hf_key` in HF's layout, from the float32 `array` llama.cpp stored:
    Q/K rows (and biases) unpermuted per head, the norm offset subtracted."""
    if architecture.permute_qk:
        heads = {
            ".self_attn.q_proj.": config["num_attention_heads"],
            ".self_attn.k_proj.": config["num_key_value_heads"],
        }
        for part, num_heads in heads.items():
            if part in hf_key:
                array = _unpermute_qk(array, num_heads)
    if architecture.norm_offset and hf_key.endswith("norm.weight"):
        array = array - np.float32(architecture.norm_offset)
    return array
