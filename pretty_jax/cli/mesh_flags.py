"""The mesh and host flags of every entry point that places a model on devices (run,
parity, train). Importing this module defines them; `mesh_from_flags` reads them."""

from __future__ import annotations

import re

from absl import flags
from jax.sharding import Mesh

from pretty_jax.cli import cache_flags
from pretty_jax.core.errors import UserError
from pretty_jax.engine import parallel

HELP_TITLE = "devices and hosts"  # the group --help lists these flags under

_MESH_DATA = flags.DEFINE_integer(
    "mesh_data", None, "Devices on the mesh's 'data' axis (batch split); default: all devices / --mesh_model.",
    lower_bound=1,
)
_MESH_MODEL = flags.DEFINE_integer(
    "mesh_model", 1, "Devices on the mesh's 'model' axis (tensor parallel: heads, MLP, vocabulary).",
    lower_bound=1,
)
_MULTIHOST = flags.DEFINE_bool(
    "multihost", False,
    "Initialise jax.distributed (every host runs the same command; on TPU pod slices the "
    "coordinator is found automatically, elsewhere give the three flags below).",
)
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0, with --multihost.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes, with --multihost.", lower_bound=1)
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index, with --multihost.", lower_bound=0)


def mesh_from_flags() -> Mesh:
    """Initialises multi-host JAX if asked and the compilation cache (`cache_flags`),
    then builds the (data, model) mesh."""
    cache_flags.apply()
    if _MULTIHOST.value:
        parallel.initialize_multihost(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    try:
        return parallel.make_mesh(_MESH_DATA.value, _MESH_MODEL.value)
    except UserError as e:  # make_mesh names its parameters data= and model=
        raise UserError(re.sub(r"\b(data|model)=", r"--mesh_\1=", str(e))) from None
