"""The reference implementation: HF transformers' PyTorch model of a checkpoint.

Used by the parity checker and the tests to prove our models right. Needs torch.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np

from pretty_jax.core.errors import MissingDependencyError


# The extra that installs what the reference needs (torch, and accelerate for GGUF files).
_INSTALL = "pip install 'pretty_jax[test]'"


def _torch():
    try:
        import torch
    except ImportError:
        raise MissingDependencyError(f"comparing against HF transformers needs torch: {_INSTALL}") from None
    return torch


def _require_accelerate() -> None:
    try:
        import accelerate  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            f"transformers loads GGUF files only with accelerate installed: {_INSTALL}"
        ) from None


def require_reference_packages(gguf: bool = False) -> None:
    """Refuses, in one line naming the extra to install, a reference that cannot load:
    torch, and accelerate too for a GGUF file (`gguf`)."""
    _torch()
    if gguf:
        _require_accelerate()


class HFReference:
    """An HF `AutoModelForCausalLM` loaded from `hf_dir` in `dtype`, in eval mode.

    gguf_file: the name of a llama.cpp GGUF file in `hf_dir` to load instead (HF
      dequantises it; needs `accelerate`).
    """

    def __init__(self, hf_dir: str | Path, dtype: str = "float32", gguf_file: str | None = None):
        require_reference_packages(gguf=gguf_file is not None)
        torch = _torch()
        from transformers import AutoModelForCausalLM

        kwargs = {} if gguf_file is None else {"gguf_file": gguf_file}
        self.torch = torch
        self.model = AutoModelForCausalLM.from_pretrained(
            hf_dir, dtype=getattr(torch, dtype), **kwargs
        ).eval()
        self._takes_positions = "position_ids" in inspect.signature(self.model.forward).parameters

    def logits(self, tokens_BT: np.ndarray, attention_mask_BT: np.ndarray) -> np.ndarray:
        """Float32 logits [B, T, V] of a left-padded batch, positions counted from
        each row's first real token (as `generate` does)."""
        torch = self.torch
        inputs = dict(
            input_ids=torch.as_tensor(tokens_BT, dtype=torch.long),
            attention_mask=torch.as_tensor(attention_mask_BT, dtype=torch.long),
        )
        if self._takes_positions:
            positions = np.maximum(np.cumsum(attention_mask_BT, axis=1) - 1, 0)
            inputs["position_ids"] = torch.as_tensor(positions, dtype=torch.long)
        with torch.no_grad():
            return self.model(**inputs).logits.float().numpy()

    def generate(
        self,
        tokens_BT: np.ndarray,
        attention_mask_BT: np.ndarray,
        max_new_tokens: int,
        pad_id: int,
        **beam_search,
    ) -> np.ndarray:
        """HF `generate`, greedy or (with `num_beams`, `length_penalty`,
        `early_stopping`: HF's names, as `BeamSearch` has them) beam search, on a
        left-padded batch; returns only the new tokens [B, <= max_new_tokens], filled
        with `pad_id` after each row ends."""
        unknown = set(beam_search) - {"num_beams", "length_penalty", "early_stopping"}
        if unknown:
            raise ValueError(f"the reference compares greedy or beam search, not {sorted(unknown)}")
        torch = self.torch
        with torch.no_grad():
            out = self.model.generate(
                input_ids=torch.as_tensor(tokens_BT, dtype=torch.long),
                attention_mask=torch.as_tensor(attention_mask_BT, dtype=torch.long),
                max_new_tokens=max_new_tokens,
                min_new_tokens=0,
                do_sample=False,
                pad_token_id=pad_id,
                **{"num_beams": 1, "length_penalty": 1.0, "early_stopping": False, **beam_search},
            )
        return out[:, tokens_BT.shape[1] :].numpy()
