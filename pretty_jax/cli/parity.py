"""Proves a pretty_jax model equal to HF transformers on the same checkpoint.

    python -m pretty_jax.parity --hf_dir=DIR [--ours=DIR] [--dtype=float32] [--prompts=FILE]
    python -m pretty_jax.parity --hf_dir=DIR --generate [--max_new_tokens=N] [--num_beams=B]
    python -m pretty_jax.parity --gguf=FILE [--generate] ...

With --gguf the reference is transformers loading the llama.cpp file itself
(`from_pretrained(dir, gguf_file=name)`, which needs torch and `accelerate`: the `test`
extra), and ours is loaded from the same file (`loading.load_model("x.gguf")`),
tokenizer included.

Runs a left-padded batch of prompts (default: built-in sentences in several languages
and scripts) through the transformers PyTorch model and through ours — once as a full
forward pass and once with the KV cache (first half prefilled, the rest one token per
step) — and compares the logits at every non-pad position. The last line is
`parity OK max_abs=... rel=... kl=... top1=...` (exit 0) or `parity FAIL ...` followed
by the bounds broken (exit 1). The bounds scale with the logits (`parity.Agreement.max_rel`)
and default by dtype (`parity.DEFAULT_TOLERANCES`), so float32 and bfloat16 runs both need
no tolerance flags; the dtype is --dtype, else the one --ours is stored in (convert writes
bfloat16), else float32, and the header line says which and why.

With --generate it compares generated tokens instead: ours (on the mesh the decode
flags describe) against HF `generate`, greedy or beam search, and ends with
`generate parity OK identical=n/n` (or FAIL, exit 1).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from absl import flags

from pretty_jax.checkpoints import loading, parity
from pretty_jax.checkpoints.reference import HFReference, require_reference_packages
from pretty_jax.checkpoints.sample_text import SENTENCES
from pretty_jax.checkpoints.tokenizer import load_tokenizer
from pretty_jax.cli import decode_flags, mesh_flags
from pretty_jax.core.errors import UserError
from pretty_jax.core.textio import numbered_lines
from pretty_jax.engine import parallel
from pretty_jax.engine.batching import left_pad
from pretty_jax.engine.generator import DecodeConfig, Generator
from pretty_jax.engine.strategies import Sampling, beam_settings
from pretty_jax.cli import help as cli_help

_HF_DIR = flags.DEFINE_string("hf_dir", None, "HF checkpoint directory or hub id org/name[@revision]: the reference.")
_GGUF = flags.DEFINE_string(
    "gguf", None, "llama.cpp GGUF file: the reference (instead of --hf_dir), as transformers loads it."
)
_OURS = flags.DEFINE_string(
    "ours", None, "Model to check, HF or converted directory or GGUF file; default: the reference's own."
)
_DTYPE = flags.DEFINE_enum(
    "dtype", None, list(loading.DTYPES),
    "Dtype of both models; it picks the default tolerances of --max_rel_tol, --kl_tol and --min_top1. Default: "
    "the dtype --ours is stored in (a converted checkpoint's own, an HF config's torch_dtype), else float32.",
)
_PROMPTS = flags.DEFINE_string(
    "prompts", None, "UTF-8 text file, one prompt per line; default: built-in sentences."
)


def _defaults_help(field: str) -> str:
    return ", ".join(f"{dtype} {getattr(t, field):g}" for dtype, t in parity.DEFAULT_TOLERANCES.items())


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


def dtype_from_flags() -> tuple[str, str]:
    """The dtype both models run in, and where it came from (the header says it): --dtype,
    else the dtype --ours is stored in (convert writes bfloat16 by default), else float32."""
    if _DTYPE.value is not None:
        return _DTYPE.value, "--dtype"
    if _OURS.value is not None:
        return loading.stored_dtype(loading.model_directory(_OURS.value, "--ours")), "as --ours is stored"
    return "float32", "the default without --ours"


def tolerances_from_flags(dtype: str) -> parity.Tolerances:
    """`dtype`'s default tolerances, with any tolerance flag given replacing its own."""
    default = parity.DEFAULT_TOLERANCES[dtype]
    given = dict(max_rel=_MAX_REL_TOL.value, kl=_KL_TOL.value, min_top1=_MIN_TOP1.value, max_abs=_MAX_ABS_TOL.value)
    return dataclasses.replace(default, **{name: value for name, value in given.items() if value is not None})


def read_prompts(path: str | None) -> list[str]:
    """The built-in sentences, or the non-blank lines of `path`."""
    if path is None:
        return list(SENTENCES)
    prompts = [line for _, line in numbered_lines(Path(path), "--prompts file")]
    if not prompts:
        raise UserError(f"{path}: no prompts (one per line expected)")
    return prompts


def check_generation(
    generator: Generator, reference: HFReference, prompts: list[str], ids: list[list[int]], config: DecodeConfig
) -> None:
    """Greedy or beam-search tokens, ours (`generator`) against HF generate, per prompt;
    exits 1 unless every prompt is identical."""
    ours = generator.generate(ids, config=config)
    tokens, mask, _ = left_pad(ids, generator.pad_id)
    theirs = reference.generate(
        tokens, mask, config.max_new_tokens, generator.pad_id, **beam_settings(config.strategy))
    identical = 0
    for row, (prompt, result) in enumerate(zip(prompts, ours)):
        n = len(result.tokens)
        same, first = parity.generation_matches(result.tokens, theirs[row], generator.pad_id)
        identical += same
        where = "" if same else f" first difference at token {first}"
        print(f"  prompt {row}: {n} tokens ({result.finish_reason}) {'identical' if same else 'DIFFERENT'}{where}  {prompt[:40]!r}")
    verdict = "OK" if identical == len(prompts) else "FAIL"
    print(f"generate parity {verdict} identical={identical}/{len(prompts)}")
    if verdict == "FAIL":
        raise SystemExit(1)


def _reference() -> Path:
    """The reference checkpoint's local path: --hf_dir or --gguf, exactly one (a hub id
    or package reference resolved, see `checkpoints.references`)."""
    if (_HF_DIR.value is None) == (_GGUF.value is None):
        raise UserError("give exactly one of --hf_dir (an HF checkpoint directory) and --gguf (a GGUF file)")
    if _GGUF.value is None:
        return loading.check_model_path(_HF_DIR.value, "--hf_dir")
    path = loading.check_model_path(_GGUF.value, "--gguf")
    if not str(path).endswith(".gguf"):
        raise UserError(f"--gguf={_GGUF.value}: expected a .gguf file")
    return path


def _check_model_flags() -> None:
    """Refuses, by flag, a reference or --ours path that is not a model."""
    _reference()
    if _OURS.value is not None:
        loading.check_model_path(_OURS.value, "--ours")


def _ours() -> Path:
    return loading.check_model_path(_OURS.value, "--ours") if _OURS.value else _reference()


def _hf_reference(dtype: str) -> HFReference:
    if _GGUF.value is None:
        return HFReference(_reference(), dtype)
    gguf = _reference()
    return HFReference(gguf.parent, dtype, gguf_file=gguf.name)


HELP = cli_help.Help(
    "python -m pretty_jax.parity",
    "Proves a pretty_jax model equal to HF transformers on the same checkpoint: the logits of a batch of "
    "prompts, full forward and with the KV cache, or with --generate the generated tokens. The last line says "
    "parity OK (exit 0) or FAIL with the bounds broken (exit 1). Needs torch: pip install -e '.[test]'.",
    examples=(
        "python -m pretty_jax.parity --hf_dir=/models/Llama-2-7b-hf",
        "python -m pretty_jax.parity --hf_dir=/models/Llama-2-7b-hf --ours=converted/llama2-7b",
        "python -m pretty_jax.parity --hf_dir=/models/Llama-2-7b-hf --generate --num_beams=4",
    ),
    groups=(
        ("models", ("hf_dir", "gguf", "ours", "dtype", "prompts")),
        ("tolerances", ("max_rel_tol", "kl_tol", "min_top1", "max_abs_tol")),
        ("what to compare", ("generate",)),
    ),
    required={"hf_dir": "unless --gguf", "gguf": "unless --hf_dir"},
)


def main(argv: list[str]) -> None:
    del argv
    require_reference_packages(gguf=_GGUF.value is not None)  # before any model is read
    _check_model_flags()
    reference_path = _reference()
    dtype, dtype_source = dtype_from_flags()
    prompts = read_prompts(_PROMPTS.value)
    tokenizer = load_tokenizer(loading.model_directory(reference_path))
    ids = [tokenizer(prompt).input_ids for prompt in prompts]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    reference = _hf_reference(dtype)
    if _GENERATE.value:
        config = decode_flags.decode_config_from_flags()
        if config.stop_strings or isinstance(config.strategy, Sampling):
            raise UserError("--generate compares greedy or beam search without stop strings")
        mesh = mesh_flags.mesh_from_flags()
        model = loading.load_model(_ours(), dtype, place=parallel.param_placer(mesh))
        generator = Generator(model, tokenizer, mesh=mesh, batch_size=decode_flags.BATCH_SIZE.value)
        check_generation(generator, reference, prompts, ids, config)
        return
    tokens, mask, positions = left_pad(ids, pad_id)
    model = loading.load_model(_ours(), dtype)
    ref = reference.logits(tokens, mask)
    full, cached = parity.our_logits(model, jnp.asarray(tokens), jnp.asarray(mask), jnp.asarray(positions))
    if full.shape != ref.shape:
        raise UserError(f"logit shapes differ: HF {ref.shape}, ours {full.shape}")
    real = mask.astype(bool)
    tolerances = tolerances_from_flags(dtype)
    print(
        f"parity of {_ours()} against HF transformers ({reference_path}): "
        f"{model.config.model_type}, {dtype} ({dtype_source}), {len(prompts)} prompts, {int(real.sum())} positions; "
        f"tolerances {tolerances.line()}"
    )
    for row, prompt in enumerate(prompts):
        row_full = parity.Agreement.of(ref[row][real[row]], full[row][real[row]])
        row_cached = parity.Agreement.of(ref[row][real[row]], cached[row][real[row]])
        print(f"  prompt {row} ({len(ids[row])} tokens) full: {row_full.line()}  cached: {row_cached.line()}  {prompt[:40]!r}")
    full_agreement = parity.Agreement.of(ref[real], full[real])
    cached_agreement = parity.Agreement.of(ref[real], cached[real])
    print(f"full forward:  {full_agreement.line()}")
    print(f"with KV cache: {cached_agreement.line()}")
    overall = parity.Agreement.of(np.concatenate([ref[real]] * 2), np.concatenate([full[real], cached[real]]))
    broken = tolerances.failures(overall)
    print(f"parity {'FAIL' if broken else 'OK'} {overall.line()}" + (f"  ({', '.join(broken)})" if broken else ""))
    if broken:
        raise SystemExit(1)

