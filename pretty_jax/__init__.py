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

import importlib
import os

# transformers advises, on import, that PyTorch is missing; pretty_jax only needs its
# tokenizers and configs (torch is for the parity reference alone).
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

# The API is imported on first use, so that `import pretty_jax.core.errors` (or an
# entry module) does not load JAX, transformers and every folder.
_API = {
    "AlignmentScorer": "pretty_jax.alignment.statistics",
    "BeamSearch": "pretty_jax.engine.strategies",
    "DecodeConfig": "pretty_jax.engine.generator",
    "Generator": "pretty_jax.engine.generator",
    "Greedy": "pretty_jax.engine.strategies",
    "Sampling": "pretty_jax.engine.strategies",
    "Settings": "pretty_jax.experiments.config",
    "load_model": "pretty_jax.checkpoints.loading",
    "run_experiment": "pretty_jax.experiments.runner",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'pretty_jax' has no attribute {name!r}")
    return getattr(importlib.import_module(_API[name]), name)
