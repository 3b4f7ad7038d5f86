"""The experiment entry point: `python -m pretty_jax.run --flagfile=configs/<experiment>.cfg`.

--mode=align   foundation vs SFT distribution statistics with 0, 1, 2, ... prior tokens
               (alignment.json + figures; see pretty_jax/alignment_report.py)
"""

from __future__ import annotations

import time
from pathlib import Path

from absl import flags, logging

from pretty_jax import checkpoint, cli, decode_flags, parallel
from pretty_jax.align_run import read_prompts_file, run_alignment
from pretty_jax.alignment import check_same_tokenizer
from pretty_jax.alignment_report import TRAJECTORIES
from pretty_jax.errors import UserError
from pretty_jax.tokenizer import load_tokenizer

_MODE = flags.DEFINE_enum("mode", "align", ["align"], "What to run (see the module docstring).")
_FOUNDATION = flags.DEFINE_string("foundation", None, "Foundation model: HF or converted checkpoint directory.")
_SFT = flags.DEFINE_string("sft", None, "SFT model: HF or converted checkpoint directory.")
_DTYPE = flags.DEFINE_enum("dtype", "bfloat16", list(checkpoint.DTYPES), "Parameter dtype of both models.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where results, reports and figures go.")
_PROMPTS_FILE = flags.DEFINE_string(
    "prompts_file", None, 'jsonl of {"id", "prompt"[, "reference"]} per line (align mode).'
)
_PRIOR_TOKENS = flags.DEFINE_list(
    "prior_tokens", ["0", "1", "2"], "Numbers of SFT prior tokens to compare, e.g. 0,1,2."
)
_TRAJECTORY = flags.DEFINE_enum(
    "trajectory", "foundation", list(TRAJECTORIES),
    "Whose tokens the statistics follow: the foundation's own greedy continuation after "
    "the prior, the SFT output, or the reference.",
)
_AGREEMENT_K = flags.DEFINE_list(
    "agreement_k", ["1", "3", "5", "10", "20", "50"], "K values of the top-K agreement statistic."
)
_STATS_CHUNK = flags.DEFINE_integer(
    "stats_chunk", 16, "Decoding steps whose full-vocabulary logits are alive at once in the statistics."
)


def _int_list(flag: flags.FlagHolder, minimum: int) -> list[int]:
    try:
        values = [int(v) for v in flag.value]
    except ValueError:
        raise UserError(f"--{flag.name}={','.join(flag.value)}: expected comma-separated integers") from None
    if not values or min(values) < minimum:
        raise UserError(f"--{flag.name}: values must be >= {minimum}")
    return values


def _require(flag: flags.FlagHolder) -> str:
    if not flag.value:
        raise UserError(f"--{flag.name} is required for --mode={_MODE.value}")
    return flag.value


def run_align_mode() -> None:
    output_dir = Path(_require(_OUTPUT_DIR))
    examples = read_prompts_file(Path(_require(_PROMPTS_FILE)))
    prior_tokens, top_k = _int_list(_PRIOR_TOKENS, 0), _int_list(_AGREEMENT_K, 1)
    mesh = decode_flags.mesh_from_flags()
    place = parallel.param_placer(mesh)
    foundation = checkpoint.load_model(_require(_FOUNDATION), _DTYPE.value, place=place)
    sft = checkpoint.load_model(_require(_SFT), _DTYPE.value, place=place)
    tokenizer = load_tokenizer(foundation.directory)
    check_same_tokenizer(tokenizer, load_tokenizer(sft.directory), _FOUNDATION.value, _SFT.value)
    start = time.perf_counter()
    report = run_alignment(
        foundation, sft, tokenizer, examples, prior_tokens, _TRAJECTORY.value, top_k,
        decode_flags.decode_config_from_flags(), output_dir, mesh=mesh,
        batch_size=decode_flags.BATCH_SIZE.value, chunk=_STATS_CHUNK.value,
        write_files=parallel.is_main_process(),
    )
    logging.info("alignment of %d examples in %.1fs", len(examples), time.perf_counter() - start)
    print(f"{'prior tokens':>12} {'steps':>6} {'top-1':>6} {'top-5':>6} {'KL(sft||lm)':>12} {'JS':>7}")
    for k, entry in report["by_prior_tokens"].items():
        o = entry["overall"]
        agreement = o["topk_agreement"]
        print(
            f"{k:>12} {o['steps']:>6} {agreement.get('1') or 0:6.3f} {agreement.get('5') or 0:6.3f} "
            f"{o['kl_sft_lm'] or 0:12.4f} {o['js'] or 0:7.4f}"
        )
    print(f"wrote {output_dir / 'alignment.json'} and figures")


def main(argv: list[str]) -> None:
    del argv
    run_align_mode()


if __name__ == "__main__":
    cli.run(main)
