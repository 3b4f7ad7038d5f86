"""The flags of `python -m pretty_jax.train`: one per `TrainSettings` field, of the
field's name, default and help (the field's metadata), plus the mesh. Importing this
module defines them; `settings_from_flags` and `mesh_from_flags` read them.

The mesh flags are mesh_flags.py's (the mesh is not a setting of the run: a resumed
run may use other devices).
"""

import dataclasses

from absl import flags

from pretty_jax.training.settings import TrainSettings

HELP_TITLE = "training"  # the group --help lists these flags under


def _define(field: dataclasses.Field) -> None:
    """The flag of one field: its kind follows the default (a tuple: a comma-separated
    list; none or None: a string), "choices" make it an enum, no default makes it required."""
    help_text, default = field.metadata["help"], field.default
    if default is dataclasses.MISSING:
        flags.DEFINE_string(field.name, None, help_text, required=True)
    elif "choices" in field.metadata:
        flags.DEFINE_enum(field.name, default, list(field.metadata["choices"]), help_text)
    elif isinstance(default, tuple):
        flags.DEFINE_list(field.name, list(default), help_text)
    elif isinstance(default, bool):
        flags.DEFINE_bool(field.name, default, help_text)
    elif isinstance(default, int):
        flags.DEFINE_integer(field.name, default, help_text)
    elif isinstance(default, float):
        flags.DEFINE_float(field.name, default, help_text)
    else:
        flags.DEFINE_string(field.name, default, help_text)


for _field in dataclasses.fields(TrainSettings):
    _define(_field)


def settings_from_flags() -> TrainSettings:
    """The `TrainSettings` the flags describe (every field has a flag of its name)."""
    values = {field.name: flags.FLAGS[field.name].value for field in dataclasses.fields(TrainSettings)}
    values["lora_targets"] = tuple(values["lora_targets"])
    return TrainSettings(**values)
