"""`--help` and `--helpfull` of every command: the command's own flags, grouped, the
required ones marked, with an example; `--helpfull` adds absl's own flags after them.
Both print to stdout and exit 0.

absl's own `--help` lists only the flags of the `__main__` module (none here: the
flags live in pretty_jax/cli/) and `--helpfull` puts absl's ~70 lines first, so the
commands answer these requests themselves (`common.run` calls `requested_help`).
"""

from __future__ import annotations

import dataclasses
import sys
import textwrap
from typing import Mapping, Sequence

from absl import flags

_WIDTH = 100
_HELP_ARGS = {"--help": "short", "-help": "short", "-?": "short", "--helpshort": "short", "-helpshort": "short",
              "--help=true": "short", "--helpfull": "full", "-helpfull": "full", "--helpfull=true": "full"}


@dataclasses.dataclass(frozen=True)
class Help:
    """What `--help` shows of one command.

    command: how it is invoked, e.g. "python -m pretty_jax.run".
    summary: a paragraph on what it does.
    examples: whole command lines.
    groups: (title, flag names) in the order shown; a flag of the command in no group is
      shown under its module's `HELP_TITLE` (e.g. decode_flags.py's "decoding").
    required: flag name -> when it is required ("" when always), marked in the listing.
    """

    command: str
    summary: str
    examples: Sequence[str] = ()
    groups: Sequence[tuple[str, Sequence[str]]] = ()
    required: Mapping[str, str] = dataclasses.field(default_factory=dict)


def requested_help(argv: Sequence[str]) -> str | None:
    """"short" or "full" when the command line asks for help (before a `--`), else None."""
    for arg in argv[1:]:
        if arg == "--":
            return None
        if arg in _HELP_ARGS:
            return _HELP_ARGS[arg]
    return None


def _is_absl(module: str) -> bool:
    return module == "absl" or module.startswith("absl.")


def _title_of(module: str) -> str:
    return getattr(sys.modules.get(module), "HELP_TITLE", module)


def command_flags(flag_values: flags.FlagValues) -> dict[str, list[flags.Flag]]:
    """The command's own flags (those of modules outside absl, aliases left out) by the
    title of the module that defines them, in definition order."""
    by_title: dict[str, list[flags.Flag]] = {}
    for module, module_flags in flag_values.flags_by_module_dict().items():
        if _is_absl(module):
            continue
        for flag in module_flags:
            if type(flag).__name__ != "_FlagAlias" and flag not in by_title.get(_title_of(module), []):
                by_title.setdefault(_title_of(module), []).append(flag)
    return by_title


def _flag_text(flag: flags.Flag, required: str | None) -> str:
    name = f"--[no]{flag.name}" if flag.boolean else f"--{flag.name}"
    mark = "" if required is None else (" (required)" if not required else f" (required {required})")
    lines = textwrap.wrap(f"{name}{mark}: {flag.help}", _WIDTH, initial_indent="  ", subsequent_indent="      ")
    if flag.default is not None and flag.default != [] and not (flag.boolean and flag.default is False):
        lines.append(f"      (default: {flag.default_as_str})")
    return "\n".join(lines)


def _grouped(spec: Help, flag_values: flags.FlagValues) -> list[tuple[str, list[flags.Flag]]]:
    """(title, flags): the spec's groups first, then the other flags by module title."""
    by_title = command_flags(flag_values)
    known = {flag.name: flag for group in by_title.values() for flag in group}
    groups, placed = [], set()
    for title, names in spec.groups:
        members = [known[name] for name in names if name in known]
        placed.update(flag.name for flag in members)
        groups.append((title, members))
    for title, members in by_title.items():
        rest = [flag for flag in members if flag.name not in placed]
        if rest:
            groups.append((title, rest))
    return [(title, members) for title, members in groups if members]


def short_help(spec: Help, flag_values: flags.FlagValues = flags.FLAGS) -> str:
    """The text of `--help`: usage, summary, examples and the command's flags by group."""
    parts = [f"usage: {spec.command} [--flag=value ...] [--flagfile=FILE]", "", textwrap.fill(spec.summary, _WIDTH)]
    if spec.examples:
        parts += ["", "examples:"] + [f"  {example}" for example in spec.examples]
    for title, members in _grouped(spec, flag_values):
        parts += ["", f"{title}:"] + [_flag_text(flag, spec.required.get(flag.name)) for flag in members]
    parts += ["", textwrap.fill("--flagfile=FILE reads flags from FILE, one per line (later flags win); "
                                "--helpfull also lists absl's own flags (logging, debugging).", _WIDTH)]
    return "\n".join(parts)


def full_help(spec: Help, flag_values: flags.FlagValues = flags.FLAGS) -> str:
    """The text of `--helpfull`: `short_help`, then absl's own flags by module."""
    parts = [short_help(spec, flag_values), "", "absl's own flags:"]
    for module in flag_values.flags_by_module_dict():
        if _is_absl(module):
            parts += ["", f"{module}:", flag_values.module_help(module).split("\n", 1)[1]]
    return "\n".join(parts)


def fallback(main_module_doc: str | None, command: str) -> Help:
    """The help of a command without a spec: its module docstring's first paragraph."""
    summary = (main_module_doc or "").strip().split("\n\n")[0] or command
    return Help(command, " ".join(summary.split()))
