"""pretty_jax: PreTTY (prefix text as a yarn) in JAX. See README.md.

The public API (the README's Python examples use it):

    load_model                       a checkpoint directory or GGUF file -> a model
    Generator, DecodeConfig          prompts + prior tokens -> continuations
    Greedy, Sampling, BeamSearch     decoding strategies
    AlignmentScorer                  foundation-vs-SFT next-token statistics
    Settings, run_experiment         an experiment, resumable, into an output directory

Folders: models/ (families), checkpoints/ (in and out), engine/ (decoding),
alignment/, tasks/, experiments/, training/, organism/ (the demo), cli/ (every flag),
core/ (errors, readers, output directories).
"""

import os

# transformers advises, on import, that PyTorch is missing; pretty_jax only needs its
# tokenizers and configs (torch is for the parity reference alone).
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

from pretty_jax.alignment.statistics import AlignmentScorer  # noqa: E402
from pretty_jax.checkpoints.loading import load_model  # noqa: E402
from pretty_jax.engine.generator import DecodeConfig, Generator  # noqa: E402
from pretty_jax.engine.strategies import BeamSearch, Greedy, Sampling  # noqa: E402
from pretty_jax.experiments import Settings, run_experiment  # noqa: E402

__all__ = [
    "AlignmentScorer", "BeamSearch", "DecodeConfig", "Generator", "Greedy", "Sampling", "Settings", "load_model",
    "run_experiment",
]
