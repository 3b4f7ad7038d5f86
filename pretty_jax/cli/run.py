"""The experiment entry point: `python -m pretty_jax.run --flagfile=configs/<experiment>.cfg`.

--mode=experiment  a task (translation / summarization / pos) with the foundation model
                   plain and with priors, and the SFT model: outputs per stage (resumable),
                   results.json, report.md, optional sweep and alignment (experiment.py)
--mode=align       foundation vs SFT distribution statistics with 0, 1, 2, ... prior
                   tokens on a --prompts_file (alignment.json + figures)
--mode=demo        the experiment on the built-in model organism (pretty_jax/organism):
                   builds it on first use (a minute or few on a laptop CPU), then runs
                   English -> Varic translation with the flags' priors, sweep and --align
"""

from __future__ import annotations

import dataclasses
import logging as std_logging
import time
from pathlib import Path

from absl import flags, logging

from pretty_jax import experiments
from pretty_jax.alignment.runner import (
    AlignmentConfig,
    ModelPair,
    check_references,
    read_prompts_file,
    run_alignment,
    write_alignment_outputs,
)
from pretty_jax.alignment.statistics import check_same_tokenizer
from pretty_jax.checkpoints import loading
from pretty_jax.cli import alternative_flags, decode_flags, mesh_flags, prompt_flags, run_flags
from pretty_jax.core import progress, run_dir
from pretty_jax.core.cache_home import cache_dir
from pretty_jax.core.errors import UserError
from pretty_jax.core.flag_names import flag_name
from pretty_jax.core.manifest import check_output_dir
from pretty_jax.datasets.references import resolve_data_reference
from pretty_jax.engine import parallel
from pretty_jax.experiments import chat, config, preview, report, runner
from pretty_jax.experiments.inputs import check_model, file_record
from pretty_jax.experiments.plan import Plan
from pretty_jax.experiments.priors import TEXT_ONLY_KINDS, PriorSpec
from pretty_jax.experiments.stages import RunRecord
from pretty_jax.organism import demo, proxy_pair
from pretty_jax.tasks.registry import get_task
from pretty_jax.tasks import Example

def _int_list(flag: flags.FlagHolder, minimum: int) -> list[int]:
    try:
        values = [int(v) for v in flag.value]
    except ValueError:
        raise UserError(f"--{flag.name}={','.join(flag.value)}: expected comma-separated integers") from None
    if not values or min(values) < minimum:
        raise UserError(f"--{flag.name}={','.join(flag.value)}: values must be >= {minimum}")
    return values


def _require(flag: flags.FlagHolder) -> str:
    if not flag.value:
        raise UserError(f"--{flag.name} is required for --mode={run_flags.MODE.value}")
    return flag.value


def _check_batch(mesh) -> None:
    data = mesh.shape[parallel.DATA]
    if decode_flags.BATCH_SIZE.value % data:
        raise UserError(f"--batch_size={decode_flags.BATCH_SIZE.value} must be a multiple of --mesh_data={data}")


def run_align_mode() -> None:
    """Every input is checked (the prompts file, the flags, the SFT prompt format
    rendered for every prompt, the tokenizers) before the output directory is opened."""
    output_dir = Path(_require(run_flags.OUTPUT_DIR))
    check_output_dir(output_dir, "--output_dir")
    prompts_file = Path(_require(run_flags.PROMPTS_FILE))
    examples = read_prompts_file(prompts_file)
    if run_flags.TRAJECTORY.value == "reference":
        check_references(examples, str(prompts_file))
    prior_tokens, top_k = _int_list(run_flags.ALIGN_PRIOR_TOKEN_COUNTS, 0), _int_list(run_flags.AGREEMENT_K, 1)
    decode = decode_flags.decode_config_from_flags()
    models = {role: check_model(_require(flag), f"--{flag.name}") for role, flag in (("foundation", run_flags.FOUNDATION), ("sft", run_flags.SFT))}
    for model in models.values():
        loading.check_lengths(model.path, model.flag, decode.max_new_tokens, decode.max_len,
                              decode_flags.BATCH_SIZE.value, run_flags.DTYPE.value)
    mesh = mesh_flags.mesh_from_flags()
    _check_batch(mesh)
    sft_prompt = prompt_flags.role_prompts_from_flags()["sft_prompt"]
    sft_tokenizer = loading.load_tokenizer_of(run_flags.SFT.value)  # auto resolves by its (fingerprinted) files
    sft_format, sft_prompts = chat.align_prompts(sft_prompt, sft_tokenizer, run_flags.SFT.value, examples)
    tokenizer = loading.load_tokenizer_of(run_flags.FOUNDATION.value)
    check_same_tokenizer(tokenizer, sft_tokenizer, run_flags.FOUNDATION.value, run_flags.SFT.value)
    settings = {"prompts_file": file_record(prompts_file, "--prompts_file").as_json(),
                "align_prior_token_counts": prior_tokens, "trajectory": run_flags.TRAJECTORY.value, "agreement_k": top_k,
                "dtype": run_flags.DTYPE.value, **{role: model.as_json() for role, model in models.items()},
                **config.decode_record(decode),
                **({"sft_prompt": dataclasses.asdict(sft_prompt)} if sft_prompt != chat.RolePrompt() else {})}
    if run_flags.DRY_RUN.value:
        _dry_run_align(output_dir, settings, examples, sft_format)
        return
    with runner.output_run(output_dir, "align", settings, {}, overwrite=run_flags.OVERWRITE.value) as (record, begin):
        place = parallel.param_placer(mesh)
        foundation = loading.load_model(run_flags.FOUNDATION.value, run_flags.DTYPE.value, place=place)
        sft = sft_format.stopping_model(loading.load_model(run_flags.SFT.value, run_flags.DTYPE.value, place=place))
        begin()
        start = time.perf_counter()
        pair = ModelPair(foundation, sft, tokenizer, (str(Path(run_flags.FOUNDATION.value)), str(Path(run_flags.SFT.value))))
        alignment = AlignmentConfig(tuple(prior_tokens), run_flags.TRAJECTORY.value, tuple(top_k), decode,
                                    decode_flags.BATCH_SIZE.value, run_flags.STATS_CHUNK.value)
        report = run_alignment(pair, examples, alignment, mesh=mesh, sft_prompts=sft_prompts)
        write_alignment_outputs(record.run_dir, ".", report)
    logging.info("alignment of %d examples in %.1fs", len(examples), time.perf_counter() - start)
    print(f"{'prior tokens':>12} {'steps':>6} {'top-1':>6} {'top-5':>6} {'KL(sft||lm)':>12} {'JS':>7}")
    for k, entry in report["by_prior_tokens"].items():
        o = entry["overall"]
        agreement = o["topk_agreement"]
        print(
            f"{k:>12} {o['steps']:>6} {agreement.get('1') or 0:6.3f} {agreement.get('5') or 0:6.3f} "
            f"{o['kl_sft_lm'] or 0:12.4f} {o['js'] or 0:7.4f}"
        )
    print(f"wrote {output_dir / 'alignment.json'}, figures and the explorer page {output_dir / 'alignment.html'}")


def _dry_run_align(output_dir: Path, settings: dict, examples: list, sft_format: chat.RoleFormatting) -> None:
    """The end of align mode's dry run, after the checks the run makes before it opens
    --output_dir: the recorded run there (refused where these settings would change it,
    unless --overwrite), then the plan and the first prompt of each model."""
    directory = run_dir.RunDirectory.inspect(output_dir, "align", "--output_dir")
    if not run_flags.OVERWRITE.value:
        runner.refuse_conflicts(output_dir, RunRecord(directory).conflicts(settings, {}))
    print(f"align: {len(examples)} prompts of {run_flags.PROMPTS_FILE.value}; prior tokens k = "
          f"{','.join(map(str, settings['align_prior_token_counts']))}, trajectory {run_flags.TRAJECTORY.value} -> {output_dir}")
    print(f"sft prompt: {chat.describe(sft_format.record())}")
    first = Example(examples[0].id, examples[0].prompt, "")
    for whose, prompt in (("", first.source), (" of the sft model", sft_format.prompt_text(first, {}))):
        print(f"first prompt{whose} ({first.id}):")
        print_prompt(prompt)
    _dry_run_passed()


def _prior_specs() -> tuple[PriorSpec, ...]:
    words = run_flags.PRIOR_WORD_COUNT.value
    specs = []
    for kind in run_flags.PRIORS.value:
        if kind == "none":
            specs.append(PriorSpec("none"))
        elif words > 0 or kind in TEXT_ONLY_KINDS:
            specs.append(PriorSpec(kind, words or 1, "words"))
        else:
            specs.append(PriorSpec(kind, run_flags.PRIOR_TOKEN_COUNT.value, "tokens"))
    return tuple(specs)


def _data_path(flag: flags.FlagHolder) -> str | None:
    """The flag's path, a `data:<dataset>/<path>` reference read as that path in the data
    cache (refused, with the command that fetches it, before the dataset is there)."""
    return resolve_data_reference(flag.value, f"--{flag.name}") if flag.value else flag.value


def settings_from_flags(output_dir: Path, **fixed) -> experiments.Settings:
    """The experiment the flags describe, with every value checked against its range;
    `fixed` settings (the demo's organism) take the place of their flags. A field is
    read from its flag (`flag_name`); the fields below convert theirs."""
    decode = decode_flags.decode_config_from_flags()
    if not flags.FLAGS["stop_strings"].present:  # each task's answer is one line
        decode = decode_flags.decode_config_from_flags(stop_strings=("\n",))
    task = fixed.get("task", run_flags.TASK.value)
    converted = dict(
        template=prompt_flags.template_from_flags(get_task(task).default_template),
        priors=_prior_specs(), sweep=tuple(_int_list(run_flags.SWEEP, 0)) if run_flags.SWEEP.value else (),
        decode=decode, batch_size=decode_flags.BATCH_SIZE.value, output_dir=output_dir,
        align_prior_tokens=tuple(_int_list(run_flags.ALIGN_PRIOR_TOKEN_COUNTS, 0)),
        agreement_k=tuple(_int_list(run_flags.AGREEMENT_K, 1)), data=None if "data" in fixed else _data_path(run_flags.DATA),
        dictionary=_data_path(run_flags.DICTIONARY), lexicon_data=_data_path(run_flags.LEXICON_DATA),
        alternatives=alternative_flags.alternatives_from_flags(), **prompt_flags.role_prompts_from_flags(),
    )
    values = {}
    for field in dataclasses.fields(experiments.Settings):
        if field.name in converted:
            values[field.name] = converted[field.name]
        else:
            value = flags.FLAGS[flag_name(field.name)].value
            values[field.name] = tuple(value) if isinstance(value, list) else value
    values |= fixed
    for name in ("data", "foundation"):
        if not values[name]:
            raise UserError(f"--{name} is required for --mode={run_flags.MODE.value}")
    settings = experiments.Settings(**values)
    settings.validate()
    return settings


def print_plan(plan: Plan) -> None:
    """A checked run's language pairs (data and example counts), systems, prompt formats,
    stages and first prompts."""
    settings = plan.settings
    for pair in plan.pairs:
        shots = f" after {len(pair.shots)} few-shot" if pair.shots else ""
        print(f"{pair.name}: {pair.records['data'].path} ({len(pair.examples)} examples{shots})")
    _print_systems_and_stages(settings)
    for role, formatting in plan.formats.items():
        print(f"{role} prompt: {chat.describe(formatting.record())}")
    for shown in preview.first_prompts(plan):
        whose = "" if shown.role == "foundation" else f" of the {shown.role} model"
        print(f"first prompt{whose} ({shown.pair}, example {shown.example_id}), {shown.how}:")
        print_prompt(shown.prompt)


def _print_systems_and_stages(settings: experiments.Settings) -> None:
    alternatives = settings.alternatives.systems(settings.systems())
    labels = [spec.label for spec in settings.systems()] + [spec.label for spec in alternatives]
    print("systems: " + ", ".join(labels) + (", SFT model" if settings.sft else ""))
    steered = f", steered systems x {len(alternatives)}" if alternatives else ""
    print(f"stages: {'sft, ' if settings.sft else ''}foundation x {len(settings.systems())}{steered}, score"
          + (", align" if settings.align else "") + f" -> {settings.output_dir}")


def print_prompt(prompt: str) -> None:
    """A prompt as the model reads it, between marker lines, and as a Python string
    literal (which shows a literal backslash apart from a newline)."""
    print(f"----\n{prompt}\n----")
    print(f"as a string: {prompt!r}")


def _dry_run_passed() -> None:
    print("dry run passed: every check of the run passed, so it would start (no model was loaded, nothing written)")


def run_experiment_mode(settings: experiments.Settings, start_fresh_on_change: bool = False) -> dict | None:
    """Runs the experiment (`experiments.run_experiment`); returns results.json's content.
    A dry run makes the same checks (`preview.check_experiment`), prints the plan and
    returns None."""
    check_output_dir(settings.output_dir, "--output_dir")
    mesh = mesh_flags.mesh_from_flags()
    _check_batch(mesh)
    if run_flags.DRY_RUN.value:
        print_plan(preview.check_experiment(settings, refuse_changes=not (run_flags.OVERWRITE.value or start_fresh_on_change)))
        _dry_run_passed()
        return None
    return experiments.run_experiment(settings, mesh, overwrite=run_flags.OVERWRITE.value,
                                      start_fresh_on_change=start_fresh_on_change)


def run_demo_mode() -> None:
    """Builds (or reuses) the model organism, points the experiment at it and prints a
    short summary with the time of each phase."""
    start = time.perf_counter()
    phases = []
    if not flags.FLAGS["verbosity"].present:  # the phases and progress below; details with --verbosity=0
        _show_only_progress_logs()
    # The organism's sentences end in " ." on purpose (the period is its own word), which
    # sacrebleu would otherwise flag, for every system, as undetokenized test data.
    std_logging.getLogger("sacrebleu").setLevel(std_logging.ERROR)

    def phase(name: str, seconds: float | None) -> None:
        """A phase's start and end, each on its own line: between them come its progress
        bars (on a terminal) or progress log lines (elsewhere)."""
        if seconds is None:
            print(f"{name} ...", flush=True)
        else:
            phases.append((name, seconds))
            print(f"{name} {seconds:.0f}s", flush=True)

    output_dir = Path(_require(run_flags.OUTPUT_DIR))
    root = Path(run_flags.ORGANISM_DIR.value) if run_flags.ORGANISM_DIR.value else cache_dir("organism")
    proxy = proxy_pair.planned_proxy_pair(demo.planned_organism(root))
    fixed = demo.experiment_settings(demo.planned_organism(root)) \
        | alternative_flags.organism_proxy(str(proxy.foundation), str(proxy.sft))
    if run_flags.DRY_RUN.value:
        _dry_run_demo(output_dir, root, fixed)
        return
    check_output_dir(output_dir, "--output_dir")
    if not (root / "organism.json").exists():
        print(f"Building the model organism in {root} (first run only, about 2 minutes on 2 CPU cores)")
    settings = settings_from_flags(output_dir, **fixed)
    organism = demo.ensure_organism(root, report=phase)  # builds what `settings` points at, or reuses it
    if alternative_flags.ORGANISM_PROXY.value:
        proxy_pair.ensure_proxy_pair(organism, report=phase)
    phase("experiment: foundation x 5 priors, SFT model, alignment", None)
    experiment_start = time.perf_counter()
    results = run_experiment_mode(settings, start_fresh_on_change=True)
    phase("experiment", time.perf_counter() - experiment_start)
    if results is not None and parallel.is_main_process():
        print(demo.summary(results, phases, time.perf_counter() - start, output_dir))


def _dry_run_demo(output_dir: Path, root: Path, fixed: dict) -> None:
    """The demo's dry run: every check of the experiment on a built organism (and proxy
    pair, with --organism_proxy); before they are built, the checks of the flags and of
    the two directories, and the plan."""
    settings = settings_from_flags(output_dir, **fixed)
    built = [root / "organism.json"] + ([root / proxy_pair.MARKER] if alternative_flags.ORGANISM_PROXY.value else [])
    if all(path.exists() for path in built):
        run_experiment_mode(settings, start_fresh_on_change=True)
        return
    check_output_dir(output_dir, "--output_dir")
    check_output_dir(root, "--organism_dir")
    _print_systems_and_stages(settings)
    what = "the model organism and its proxy pair are" if len(built) > 1 else "the model organism is"
    print(f"{what} not built in {root} yet: the run builds them first (a few minutes on a laptop CPU), "
          "then reads their data and models")
    _dry_run_passed()


class _ProgressLines(std_logging.Filter):
    """Passes warnings and the progress lines of core/progress.py, at most one per stage
    every `interval` seconds besides its last: off a terminal (a pipe, a job log) they
    are the only sign of life during minutes of pretraining, with the rate and ETA."""

    def __init__(self, interval: float = 10.0):
        super().__init__()
        self.source, self.interval = Path(progress.__file__).resolve(), interval
        self.last_shown: dict[str, float] = {}

    def filter(self, record: std_logging.LogRecord) -> bool:
        if record.levelno >= std_logging.WARNING:
            return True
        if Path(record.pathname).resolve() != self.source:
            return False
        stage, done, total = record.args[:3]  # Progress.update's line: description, done, total, ...
        last = self.last_shown.get(stage)
        if done < total and last is not None and record.created - last < self.interval:
            return False
        self.last_shown[stage] = record.created
        return True


def _show_only_progress_logs() -> None:
    """Hides INFO logs but the progress lines (`_ProgressLines`)."""
    logging.get_absl_handler().addFilter(_ProgressLines())


def _warn_deprecated() -> None:
    for old, new in run_flags.DEPRECATED_FLAGS.items():
        if flags.FLAGS[old].present:
            logging.warning("--%s is deprecated: it is now --%s (the old spelling still works)", old, new)


def main(argv: list[str]) -> None:
    del argv
    _warn_deprecated()
    if run_flags.MODE.value == "align":
        run_align_mode()
    elif run_flags.MODE.value == "demo":
        run_demo_mode()
    else:
        results = run_experiment_mode(settings_from_flags(Path(_require(run_flags.OUTPUT_DIR))))
        if results is not None and parallel.is_main_process():
            print(report.report_markdown(results))
            print(f"wrote {Path(run_flags.OUTPUT_DIR.value) / 'report.md'} and results.json")

