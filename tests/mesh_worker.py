"""Runs a job on a mesh of simulated CPU devices, optionally as one of several
processes, and prints its results as one JSON line (for tests/test_parallel.py and
tests/test_alignment.py).

--job=generate   the shared generation cases (tests/generation_cases.py)
--job=alignment  alignment statistics of --checkpoint against --sft_checkpoint
"""

import json
import sys
from pathlib import Path

import jax
from absl import app, flags

sys.path.insert(0, str(Path(__file__).parent))

_JOB = flags.DEFINE_enum("job", "generate", ["generate", "alignment"], "What to run.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "HF checkpoint directory.", required=True)
_SFT_CHECKPOINT = flags.DEFINE_string("sft_checkpoint", None, "Second model, for --job=alignment.")
_DEVICES = flags.DEFINE_integer("devices", 4, "Simulated CPU devices in this process.")
_MESH_DATA = flags.DEFINE_integer("mesh_data", None, "Mesh 'data' size.")
_MESH_MODEL = flags.DEFINE_integer("mesh_model", 1, "Mesh 'model' size.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "Multi-process: host:port of process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-process: number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Multi-process: this process's index.")


def main(argv):
    del argv
    jax.config.update("jax_num_cpu_devices", _DEVICES.value)
    from pretty_jax.checkpoints import loading
    from pretty_jax.engine import parallel

    if _COORDINATOR.value:
        parallel.initialize_multihost(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    from generation_cases import alignment_case, run_cases

    from pretty_jax.engine.generator import Generator

    mesh = parallel.make_mesh(_MESH_DATA.value, _MESH_MODEL.value)
    model = loading.load_model(_CHECKPOINT.value, "float32", place=parallel.param_placer(mesh))
    tokenizer = loading.load_tokenizer_of(_CHECKPOINT.value)
    if _JOB.value == "generate":
        outputs = run_cases(Generator(model, tokenizer, mesh=mesh, batch_size=4), tokenizer)
    else:
        sft = loading.load_model(_SFT_CHECKPOINT.value, "float32", place=parallel.param_placer(mesh))
        outputs = alignment_case(model, sft, tokenizer, mesh)
    print(json.dumps({"process": jax.process_index(), "mesh": dict(mesh.shape), "outputs": outputs}))


if __name__ == "__main__":
    app.run(main)
