"""The pieces of HF checkpoint layouts that the families share: per-layer tensor
tables, the untied output head, and the `model.*` decoder of LLaMA and Gemma 3 with its
attention and gated-MLP projections. Each family's `checkpoint_layout` adds only its own
names (norms, biases, fused projections, aliases)."""

from __future__ import annotations

from typing import Callable

from pretty_jax.models.conversion import CheckpointLayout, HFTensor, Matrix

# Where HF's `model.*` decoder keeps its layers: `model.layers.{i}.*`.
DECODER_LAYERS = "model.layers"
# (our prefix `layers.i`, the HF prefix of layer i) -> that layer's tensors.
BlockTensors = Callable[[str, str], dict[str, HFTensor]]


def layer_tensors(num_layers: int, hf_prefix: str, block_tensors: BlockTensors) -> dict[str, HFTensor]:
    """`block_tensors` of every layer i: ours under `layers.i`, HF's under `{hf_prefix}.i`."""
    tensors: dict[str, HFTensor] = {}
    for i in range(num_layers):
        tensors |= block_tensors(f"layers.{i}", f"{hf_prefix}.{i}")
    return tensors


def output_head_tensors(tied: bool) -> dict[str, HFTensor]:
    """The separate output head `lm_head.weight`, or nothing when it is tied."""
    return {} if tied else {"lm_head": HFTensor("lm_head.weight")}


def tied_output_head(tied: bool) -> tuple[tuple[str, str], ...]:
    """`CheckpointLayout.tied` for an output head tied to the embeddings."""
    return (("lm_head.weight", "embed"),) if tied else ()


def attention_projections(ours: str, hf: str) -> dict[str, HFTensor]:
    """q/k/v [N*H or K*H, D] and o [D, N*H] under HF's `self_attn.*_proj`."""
    return {
        f"{ours}.attn.q_proj": HFTensor(f"{hf}.self_attn.q_proj.weight", Matrix(2)),
        f"{ours}.attn.k_proj": HFTensor(f"{hf}.self_attn.k_proj.weight", Matrix(2)),
        f"{ours}.attn.v_proj": HFTensor(f"{hf}.self_attn.v_proj.weight", Matrix(2)),
        f"{ours}.attn.o_proj": HFTensor(f"{hf}.self_attn.o_proj.weight", Matrix(1)),
    }


def gated_mlp_projections(ours: str, hf: str) -> dict[str, HFTensor]:
    """gate/up [F, D] and down [D, F] under HF's `mlp.*_proj`."""
    return {
        f"{ours}.mlp.{name}_proj": HFTensor(f"{hf}.mlp.{name}_proj.weight", Matrix(1))
        for name in ("gate", "up", "down")
    }


def decoder_layout(
    num_layers: int, tie_word_embeddings: bool, block_tensors: BlockTensors, **layout_options
) -> CheckpointLayout:
    """HF's `model.*` decoder (LLaMA, Gemma 3): embeddings, final norm, the output head
    unless tied, and `block_tensors` of every `model.layers.i`. `layout_options` are the
    remaining `CheckpointLayout` fields (ignored, aliases)."""
    tensors = {
        "embed": HFTensor("model.embed_tokens.weight"),
        "final_norm.scale": HFTensor("model.norm.weight"),
        **output_head_tensors(tie_word_embeddings),
        **layer_tensors(num_layers, DECODER_LAYERS, block_tensors),
    }
    return CheckpointLayout(tensors=tensors, tied=tied_output_head(tie_word_embeddings),
                            layer_prefix=DECODER_LAYERS, **layout_options)
