"""Trains a causal LM: pretraining from scratch, or full / LoRA fine-tuning of a checkpoint.

    python -m pretty_jax.train --flagfile=configs/train_<experiment>.cfg

Writes OUTPUT_DIR/metrics.jsonl (the loss curve), OUTPUT_DIR/train_state/ (the last
saved state: running the same command again resumes from it) and OUTPUT_DIR/hf/ (the
trained model as an HF checkpoint), each file listed in OUTPUT_DIR's manifest: a
non-empty OUTPUT_DIR without one is refused, --overwrite replaces only the files it
lists (a model card a user put into OUTPUT_DIR/hf/ stays), and a second command on the
same OUTPUT_DIR fails at once naming the first. The flags
(`cli/train_flags.py`) map one to one onto `TrainSettings`;
`pretty_jax.training.train` does the work.
"""

from pretty_jax.cli import mesh_flags, train_flags
from pretty_jax.training import train
from pretty_jax.cli import help as cli_help


HELP = cli_help.Help(
    "python -m pretty_jax.train",
    "Trains a causal LM with optax: pretraining from scratch or full / LoRA fine-tuning of a checkpoint. "
    "Writes OUTPUT_DIR/metrics.jsonl, OUTPUT_DIR/train_state/ (running the same command again resumes from it) "
    "and OUTPUT_DIR/hf/ (the trained model as an HF checkpoint).",
    examples=(
        "python -m pretty_jax.train --init=scratch --model_config=config.json --tokenizer=TOK "
        "--train_file=corpus.jsonl --output_dir=OUT",
        "python -m pretty_jax.train --init=/models/bloom-7b1 --data_mode=sft --train_file=sft.jsonl --lora_rank=8 "
        "--output_dir=OUT",
    ),
    groups=(
        ("data and output", ("output_dir", "train_file", "eval_file", "data_mode", "max_seq_len", "overwrite")),
        ("model", ("init", "model_config", "tokenizer", "compute_dtype", "export_dtype", "export_every_save")),
        ("LoRA", ("lora_rank", "lora_alpha", "lora_targets")),
    ),
    required={"output_dir": "", "train_file": "", "model_config": "with --init=scratch"},
)


def main(argv: list[str]) -> None:
    del argv
    hf_dir = train(train_flags.settings_from_flags(), mesh_flags.mesh_from_flags())
    print(f"trained model: {hf_dir}")

