"""Proves a pretty_jax model equal to HF transformers on the same checkpoint.

    python -m pretty_jax.parity --hf_dir=DIR [--ours=DIR] [--dtype=float32] [--prompts=FILE]
    python -m pretty_jax.parity --hf_dir=DIR --generate [--max_new_tokens=N] [--num_beams=B]
    python -m pretty_jax.parity --gguf=FILE [--generate] ...

With --gguf the reference is transformers loading the llama.cpp file itself
(`from_pretrained(dir, gguf_file=name)`, which needs `accelerate`), and ours is loaded
from the same file (`loading.load_model("x.gguf")`), tokenizer included.

Runs a left-padded batch of prompts (default: built-in sentences in several languages
and scripts) through the transformers PyTorch model and through ours — once as a full
forward pass and once with the KV cache (first half prefilled, the rest one token per
step) — and compares the logits at every non-pad position. The last line is
`parity OK max_abs=... rel=... kl=... top1=...` (exit 0) or `parity FAIL ...` followed
by the bounds broken (exit 1). The bounds scale with the logits (`Agreement.max_rel`)
and default by dtype (`DEFAULT_TOLERANCES`), so float32 and bfloat16 runs both need
no tolerance flags.

With --generate it compares generated tokens instead: ours (on the mesh the decode
flags describe) against HF `generate`, greedy or beam search, and ends with
`generate parity OK identical=n/n` (or FAIL, exit 1).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from pretty_jax.checkpoints import loading
from pretty_jax.checkpoints.reference import HFReference
from pretty_jax.checkpoints.sample_text import SENTENCES
from pretty_jax.checkpoints.tokenizer import load_tokenizer
from pretty_jax.cli import decode_flags, mesh_flags
from pretty_jax.core.errors import UserError
from pretty_jax.core.textio import numbered_lines
from pretty_jax.engine import parallel
from pretty_jax.engine.batching import left_pad
from pretty_jax.engine.generator import Generator
from pretty_jax.engine.strategies import Sampling
from pretty_jax.models import Model, forward, new_cache

_HF_DIR = flags.DEFINE_string("hf_dir", None, "HF checkpoint directory: the reference.")
_GGUF = flags.DEFINE_string(
    "gguf", None, "llama.cpp GGUF file: the reference (instead of --hf_dir), as transformers loads it."
)
_OURS = flags.DEFINE_string(
    "ours", None, "Model to check, HF or converted directory or GGUF file; default: the reference's own."
)
_DTYPE = flags.DEFINE_enum(
    "dtype", "float32", list(loading.DTYPES),
    "Dtype of both models; it picks the default tolerances of --max_rel_tol, --kl_tol and --min_top1.",
)
_PROMPTS = flags.DEFINE_string(
    "prompts", None, "UTF-8 text file, one prompt per line; default: built-in sentences."
)


@dataclasses.dataclass(frozen=True)
class Tolerances:
    """What parity allows. Any bound left None is not checked.

    max_rel: largest relative logit difference (`Agreement.max_rel`).
    kl: largest mean KL(HF || ours) per position.
    min_top1: smallest fraction of positions whose top-1 token agrees.
    max_abs: largest absolute logit difference; off by default, since logits grow with
      the model (a correct float32 Gemma 3 differs from HF by 1e-3 at logits near 30).
    """

    max_rel: float | None
    kl: float | None
    min_top1: float | None
    max_abs: float | None = None

    def failures(self, agreement: "Agreement") -> list[str]:
        """The bounds `agreement` breaks, each as e.g. `rel=0.012>0.0001`; empty if none."""
        broken = []
        if self.max_rel is not None and not agreement.max_rel <= self.max_rel:
            broken.append(f"rel={agreement.max_rel:.3g}>{self.max_rel:g}")
        if self.kl is not None and not agreement.kl <= self.kl:
            broken.append(f"kl={agreement.kl:.3g}>{self.kl:g}")
        if self.min_top1 is not None and not agreement.top1 >= self.min_top1:
            broken.append(f"top1={agreement.top1:.3f}<{self.min_top1:g}")
        if self.max_abs is not None and not agreement.max_abs <= self.max_abs:
            broken.append(f"max_abs={agreement.max_abs:.3g}>{self.max_abs:g}")
        return broken

    def line(self) -> str:
        bounds = [
            f"rel<={self.max_rel:g}" if self.max_rel is not None else None,
            f"kl<={self.kl:g}" if self.kl is not None else None,
            f"top1>={self.min_top1:g}" if self.min_top1 is not None else None,
            f"max_abs<={self.max_abs:g}" if self.max_abs is not None else None,
        ]
        return " ".join(b for b in bounds if b) or "none"


# Per dtype, bounds a correct model meets with a margin. Measured on Gemma 3 270M:
# float32 rel 4.3e-5, KL 4e-11 (rounding in a different order of operations); bfloat16
# rel 0.069, KL 1.5e-3, top-1 0.975 (an 8-bit mantissa through 18 layers). float32
# catches subtle defects (a RoPE base 5% off: rel 0.12); bfloat16 only gross ones.
DEFAULT_TOLERANCES = {
    "float32": Tolerances(max_rel=2e-4, kl=1e-6, min_top1=0.99),
    "bfloat16": Tolerances(max_rel=0.15, kl=1e-2, min_top1=0.9),
}


def _defaults_help(field: str) -> str:
    return ", ".join(f"{dtype} {getattr(t, field):g}" for dtype, t in DEFAULT_TOLERANCES.items())


_MAX_REL_TOL = flags.DEFINE_float(
    "max_rel_tol", None,
    "Largest allowed relative logit difference: at each position, max |HF - ours| over the "
    "vocabulary divided by max(1, max |HF logit|) there. Default by --dtype: "
    + _defaults_help("max_rel") + ".",
)
_KL_TOL = flags.DEFINE_float(
    "kl_tol", None,
    "Largest allowed mean KL(HF || ours) per position. Default by --dtype: " + _defaults_help("kl") + ".",
)
_MIN_TOP1 = flags.DEFINE_float(
    "min_top1", None,
    "Smallest allowed top-1 agreement. Default by --dtype: " + _defaults_help("min_top1") + ".",
)
_MAX_ABS_TOL = flags.DEFINE_float(
    "max_abs_tol", None,
    "Largest allowed absolute |HF - ours| logit difference, checked as well when given; "
    "default: not checked (the relative bound scales with the logits instead).",
)
_GENERATE = flags.DEFINE_bool(
    "generate", False, "Compare generated tokens with HF generate instead of logits."
)


@dataclasses.dataclass(frozen=True)
class Agreement:
    """How close two sets of logits are over some positions.

    max_abs: largest |reference - ours| logit difference.
    max_rel: largest, over positions, of that position's max |reference - ours| divided
      by max(1, max |reference logit|) at the position. Rounding error in a logit grows
      with the magnitudes summed into it, so this bound holds a correct model to the
      same standard whatever its logit scale; per position (not over the batch), so one
      large-logit position cannot excuse an error where the logits are small; and at
      least 1 so near-zero logits are judged in absolute terms.
    kl: mean KL(reference || ours) per position.
    top1: fraction of positions whose most likely token agrees.
    """

    max_abs: float
    max_rel: float
    kl: float
    top1: float
    positions: int

    @classmethod
    def of(cls, reference_PV: np.ndarray, ours_PV: np.ndarray) -> "Agreement":
        """Compares logits of P positions (rows) over the vocabulary, in float64."""
        ref, ours = reference_PV.astype(np.float64), ours_PV.astype(np.float64)
        ref_logp = ref - _logsumexp(ref)
        ours_logp = ours - _logsumexp(ours)
        kl_P = np.sum(np.exp(ref_logp) * (ref_logp - ours_logp), axis=-1)
        abs_diff_P = np.abs(ref - ours).max(axis=-1)
        scale_P = np.maximum(1.0, np.abs(ref).max(axis=-1))
        return cls(
            max_abs=float(abs_diff_P.max()),
            max_rel=float((abs_diff_P / scale_P).max()),
            kl=float(kl_P.mean()),
            top1=float(np.mean(ref.argmax(-1) == ours.argmax(-1))),
            positions=len(ref),
        )

    def line(self) -> str:
        return f"max_abs={self.max_abs:.3g} rel={self.max_rel:.3g} kl={self.kl:.3g} top1={self.top1:.3f}"


def tolerances_from_flags() -> Tolerances:
    """The --dtype's default tolerances, with any tolerance flag given replacing its own."""
    default = DEFAULT_TOLERANCES[_DTYPE.value]
    given = dict(max_rel=_MAX_REL_TOL.value, kl=_KL_TOL.value, min_top1=_MIN_TOP1.value, max_abs=_MAX_ABS_TOL.value)
    return dataclasses.replace(default, **{name: value for name, value in given.items() if value is not None})


def _logsumexp(x: np.ndarray) -> np.ndarray:
    top = x.max(axis=-1, keepdims=True)
    return top + np.log(np.exp(x - top).sum(axis=-1, keepdims=True))


def read_prompts(path: str | None) -> list[str]:
    """The built-in sentences, or the non-blank lines of `path`."""
    if path is None:
        return list(SENTENCES)
    prompts = [line for _, line in numbered_lines(Path(path), "--prompts file")]
    if not prompts:
        raise UserError(f"{path}: no prompts (one per line expected)")
    return prompts


def our_logits(model: Model, tokens, mask, positions) -> tuple[np.ndarray, np.ndarray]:
    """Our float32 logits [B, T, V], from one full forward and from a cached run (the
    first half of the slots prefilled, then one token per step)."""
    run = jax.jit(forward, static_argnums=0)
    full, _ = run(model.graphdef, model.params, tokens, positions, mask)
    batch, length = tokens.shape
    split = max(1, length // 2)
    cache = new_cache(model.config, batch, length, model.dtype)
    pieces = []
    for start, stop in [(0, split)] + [(t, t + 1) for t in range(split, length)]:
        logits, cache = run(
            model.graphdef, model.params, tokens[:, start:stop], positions[:, start:stop],
            mask[:, start:stop], cache,
        )
        pieces.append(np.asarray(logits))
    return np.asarray(full), np.concatenate(pieces, axis=1)


def check_generation(tokenizer, reference: HFReference, prompts: list[str], ids: list[list[int]]) -> None:
    """Greedy or beam-search tokens, ours against HF generate, per prompt."""
    config = decode_flags.decode_config_from_flags()
    if config.stop_strings or isinstance(config.strategy, Sampling):
        raise UserError("--generate compares greedy or beam search without stop strings")
    mesh = mesh_flags.mesh_from_flags()
    model = loading.load_model(_ours(), _DTYPE.value, place=parallel.param_placer(mesh))
    generator = Generator(model, tokenizer, mesh=mesh, batch_size=decode_flags.BATCH_SIZE.value)
    ours = generator.generate(ids, config=config)
    tokens, mask, _ = left_pad(ids, generator.pad_id)
    strategy = config.strategy
    theirs = reference.generate(
        tokens, mask, config.max_new_tokens, generator.pad_id,
        num_beams=getattr(strategy, "num_beams", 1),
        length_penalty=getattr(strategy, "length_penalty", 1.0),
        early_stopping=getattr(strategy, "early_stopping", False),
    )
    identical = 0
    for row, (prompt, result) in enumerate(zip(prompts, ours)):
        reference_row = [int(t) for t in theirs[row]]
        n = len(result.tokens)
        same = list(result.tokens) == reference_row[:n] and all(t == generator.pad_id for t in reference_row[n:])
        identical += same
        where = "" if same else f" first difference at token {_first_difference(result.tokens, reference_row)}"
        print(f"  prompt {row}: {n} tokens ({result.finish_reason}) {'identical' if same else 'DIFFERENT'}{where}  {prompt[:40]!r}")
    verdict = "OK" if identical == len(prompts) else "FAIL"
    print(f"generate parity {verdict} identical={identical}/{len(prompts)}")
    if verdict == "FAIL":
        raise SystemExit(1)


def _first_difference(ours, theirs) -> int:
    return next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))


def _reference() -> str:
    """The reference checkpoint's path: --hf_dir or --gguf, exactly one."""
    if (_HF_DIR.value is None) == (_GGUF.value is None):
        raise UserError("give exactly one of --hf_dir (an HF checkpoint directory) and --gguf (a GGUF file)")
    return _HF_DIR.value or _GGUF.value


def _check_model_flags() -> None:
    """Refuses, by flag, a reference or --ours path that is not a model."""
    if _GGUF.value is not None and not _GGUF.value.endswith(".gguf"):
        raise UserError(f"--gguf={_GGUF.value}: expected a .gguf file")
    loading.check_model_path(_reference(), "--hf_dir" if _GGUF.value is None else "--gguf")
    if _OURS.value is not None:
        loading.check_model_path(_OURS.value, "--ours")


def _ours() -> str:
    return _OURS.value or _reference()


def _hf_reference() -> HFReference:
    if _GGUF.value is None:
        return HFReference(_HF_DIR.value, _DTYPE.value)
    gguf = Path(_GGUF.value)
    return HFReference(gguf.parent, _DTYPE.value, gguf_file=gguf.name)


def main(argv: list[str]) -> None:
    del argv
    _check_model_flags()
    reference_path = _reference()
    prompts = read_prompts(_PROMPTS.value)
    tokenizer = load_tokenizer(loading.model_directory(reference_path))
    ids = [tokenizer(prompt).input_ids for prompt in prompts]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    reference = _hf_reference()
    if _GENERATE.value:
        check_generation(tokenizer, reference, prompts, ids)
        return
    tokens, mask, positions = left_pad(ids, pad_id)
    model = loading.load_model(_ours(), _DTYPE.value)
    ref = reference.logits(tokens, mask)
    full, cached = our_logits(model, jnp.asarray(tokens), jnp.asarray(mask), jnp.asarray(positions))
    if full.shape != ref.shape:
        raise UserError(f"logit shapes differ: HF {ref.shape}, ours {full.shape}")
    real = mask.astype(bool)
    tolerances = tolerances_from_flags()
    print(
        f"parity of {_ours()} against HF transformers ({reference_path}): "
        f"{model.config.model_type}, {_DTYPE.value}, {len(prompts)} prompts, {int(real.sum())} positions; "
        f"tolerances {tolerances.line()}"
    )
    for row, prompt in enumerate(prompts):
        row_full = Agreement.of(ref[row][real[row]], full[row][real[row]])
        row_cached = Agreement.of(ref[row][real[row]], cached[row][real[row]])
        print(f"  prompt {row} ({len(ids[row])} tokens) full: {row_full.line()}  cached: {row_cached.line()}  {prompt[:40]!r}")
    full_agreement = Agreement.of(ref[real], full[real])
    cached_agreement = Agreement.of(ref[real], cached[real])
    print(f"full forward:  {full_agreement.line()}")
    print(f"with KV cache: {cached_agreement.line()}")
    overall = Agreement.of(np.concatenate([ref[real]] * 2), np.concatenate([full[real], cached[real]]))
    broken = tolerances.failures(overall)
    print(f"parity {'FAIL' if broken else 'OK'} {overall.line()}" + (f"  ({', '.join(broken)})" if broken else ""))
    if broken:
        raise SystemExit(1)

