"""Runs jobs on meshes of simulated CPU devices in one process, optionally one of
several processes, and prints their results as one JSON line (for
tests/test_parallel.py and tests/test_alignment.py). Each --run is one job on its own
mesh; one process runs them in turn, paying its start-up once.

--job=generate   the shared generation cases (tests/generation_cases.py)
--job=alignment  alignment statistics of each run's checkpoint against --sft_checkpoint
"""

import json
import sys
from pathlib import Path

import jax
from absl import app, flags

sys.path.insert(0, str(Path(__file__).parent))

_JOB = flags.DEFINE_enum("job", "generate", ["generate", "alignment"], "What to run.")
_RUNS = flags.DEFINE_multi_string(
    "run", None, "DATAxMODEL:CHECKPOINT, e.g. 2x2:/tmp/llama: the job on a mesh of that shape.", required=True
)
_SFT_CHECKPOINT = flags.DEFINE_string("sft_checkpoint", None, "Second model, for --job=alignment.")
_DEVICES = flags.DEFINE_integer("devices", 4, "Simulated CPU devices in this process.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "Multi-process: host:port of process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-process: number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Multi-process: this process's index.")


def _run(spec: str) -> dict:
    """One --run: {"mesh": {axis: size}, "outputs": the job's outputs}."""
    from generation_cases import alignment_case, run_cases

    from pretty_jax.checkpoints import loading
    from pretty_jax.engine import parallel
    from pretty_jax.engine.generator import Generator

    shape, checkpoint = spec.split(":", 1)
    data, model = (int(size) for size in shape.split("x"))
    mesh = parallel.make_mesh(data, model)
    foundation = loading.load_model(checkpoint, "float32", place=parallel.param_placer(mesh))
    tokenizer = loading.load_tokenizer_of(checkpoint)
    if _JOB.value == "generate":
        outputs = run_cases(Generator(foundation, tokenizer, mesh=mesh, batch_size=4), tokenizer)
    else:
        sft = loading.load_model(_SFT_CHECKPOINT.value, "float32", place=parallel.param_placer(mesh))
        outputs = alignment_case(foundation, sft, tokenizer, mesh)
    return {"mesh": dict(mesh.shape), "outputs": outputs}


def main(argv):
    del argv
    jax.config.update("jax_num_cpu_devices", _DEVICES.value)
    if _COORDINATOR.value:
        from pretty_jax.engine import parallel

        parallel.initialize_multihost(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    runs = [_run(spec) for spec in _RUNS.value]
    print(json.dumps({"process": jax.process_index(), "runs": runs}))


if __name__ == "__main__":
    app.run(main)
