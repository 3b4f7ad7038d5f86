"""Keeps BUILD true to the tree: every module and test file belongs to a target, every
import is covered by that target's deps, every dep names something that exists."""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RULES = ("py_library", "py_binary", "py_test")

def _writer():
    spec = importlib.util.spec_from_file_location("write_build", ROOT / "scripts" / "write_build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


WRITER = _writer()
DISTRIBUTIONS = WRITER.DISTRIBUTIONS
TEST_MAIN = WRITER.TEST_MAIN


def test_build_is_what_the_tree_gives():
    assert (ROOT / "BUILD").read_text() == WRITER.render(), "BUILD is out of date: run python scripts/write_build.py"


def _targets() -> dict[str, dict]:
    """BUILD's targets by name: kind, srcs, deps (':x' or 'pip:x'), data, main."""
    tree = ast.parse((ROOT / "BUILD").read_text(), filename="BUILD")
    targets = {}
    for statement in tree.body:
        call = statement.value if isinstance(statement, ast.Expr) else None
        if not (isinstance(call, ast.Call) and getattr(call.func, "id", None) in RULES):
            continue
        fields = {kw.arg: _value(kw.value) for kw in call.keywords}
        assert fields["name"] not in targets, f"target {fields['name']} defined twice"
        targets[fields["name"]] = dict(kind=call.func.id, **fields)
    return targets


def _value(node: ast.AST):
    if isinstance(node, ast.List):
        return [_value(element) for element in node.elts]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _value(node.left) + _value(node.right)
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "requirement":
        return "pip:" + node.args[0].value
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "glob":
        patterns = _value(node.args[0])
        return sorted(p.relative_to(ROOT).as_posix() for pattern in patterns for p in ROOT.glob(pattern))
    return ast.literal_eval(node)


def _declared_distributions() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    return {re.split(r"[<>=\[ ;]", spec, maxsplit=1)[0] for spec in specs}


def _owner_of(targets: dict[str, dict]) -> dict[str, str]:
    """Every src -> its target; the shared pytest launcher -> the first py_test."""
    owner = {}
    for name, target in targets.items():
        for src in target.get("srcs", []):
            if src == TEST_MAIN and target["kind"] == "py_test":
                owner.setdefault(src, name)
                continue
            assert src not in owner, f"{src} is in both {owner[src]} and {name}"
            owner[src] = name
    return owner


def _imports(path: Path) -> set[str]:
    return WRITER.imports(path)


def _closure(targets: dict[str, dict], name: str) -> set[str]:
    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for dep in targets[current].get("deps", []) + targets[current].get("data", []):
            if dep.startswith(":"):
                todo.append(dep[1:])
    return seen


def test_every_module_and_test_has_a_target():
    owner = _owner_of(_targets())
    modules = [p.relative_to(ROOT).as_posix() for d in ("pretty_jax", "scripts") for p in (ROOT / d).rglob("*.py")]
    tests = [p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").glob("*.py")]
    missing = sorted(set(modules + tests) - set(owner))
    assert not missing, f"add these files to a BUILD target: {missing}"
    stale = sorted(src for src in owner if not (ROOT / src).exists())
    assert not stale, f"BUILD lists files that do not exist: {stale}"


def test_each_test_file_is_a_py_test_and_each_entry_point_a_py_binary():
    targets = _targets()
    owner = _owner_of(targets)
    for test in (ROOT / "tests").glob("test_*.py"):
        src = test.relative_to(ROOT).as_posix()
        assert targets[owner[src]]["kind"] == "py_test", f"{src} is not in a py_test"
    for module in (ROOT / "pretty_jax").rglob("*.py"):
        if 'if __name__ == "__main__":' in module.read_text():
            src = module.relative_to(ROOT).as_posix()
            target = targets[owner[src]]
            assert target["kind"] == "py_binary" and target["main"] == src, f"{src} needs a py_binary"


def test_each_py_test_runs_its_file_under_pytest():
    """A test file run as a plain script defines its tests and exits 0: each py_test's
    main is the launcher, given the test file; pytest also loads tests/conftest.py."""
    for name, target in _targets().items():
        if target["kind"] != "py_test":
            continue
        test_file = f"tests/{name}.py"
        assert target["main"] == TEST_MAIN and TEST_MAIN in target["srcs"], f"{name} does not run under pytest"
        assert target["args"] == [test_file] and test_file in target["srcs"], f"{name} does not run {test_file}"
        assert ":test_fixtures" in target["deps"] and "pip:pytest" in target["deps"], f"{name} lacks conftest or pytest"


def test_pytest_launcher_passes_bazels_filter_and_xml_path():
    spec = importlib.util.spec_from_file_location("pytest_main", ROOT / TEST_MAIN)
    launcher = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launcher)
    assert launcher.pytest_args(["tests/test_x.py"], {})[-1] == "tests/test_x.py"
    args = launcher.pytest_args(["tests/test_x.py"], {"TESTBRIDGE_TEST_ONLY": "rope", "XML_OUTPUT_FILE": "/o/t.xml"})
    assert args[-3:] == ["-k", "rope", "--junitxml=/o/t.xml"]


def test_deps_name_existing_targets_and_declared_packages():
    targets = _targets()
    declared = _declared_distributions()
    for name, target in targets.items():
        for dep in target.get("deps", []) + target.get("data", []):
            if dep.startswith(":"):
                assert dep[1:] in targets, f"{name} depends on unknown target {dep}"
            elif dep.startswith("pip:"):
                assert dep[4:] in declared, f"{name} needs {dep[4:]}, which pyproject.toml does not declare"
            else:
                assert (ROOT / dep).exists(), f"{name} names a missing file {dep}"


@pytest.mark.parametrize("src", sorted(_owner_of(_targets())))
def test_imports_are_covered_by_deps(src):
    targets = _targets()
    owner = _owner_of(targets)
    name = owner[src]
    reachable = _closure(targets, name)
    direct = set(targets[name].get("deps", []))
    for module in sorted(_imports(ROOT / src)):
        top = module.split(".")[0]
        local_test_module = (ROOT / "tests" / f"{top}.py").exists()
        if top == "pretty_jax" or local_test_module:
            file = f"tests/{top}.py" if local_test_module else WRITER.module_file(module)
            if file is not None:
                assert owner[file] in reachable, f"{src} imports {module}; add :{owner[file]} to {name}'s deps"
        elif top in sys.stdlib_module_names:
            continue
        else:
            assert top in DISTRIBUTIONS, f"{src} imports unknown package {top}; add it to DISTRIBUTIONS"
            assert f"pip:{DISTRIBUTIONS[top]}" in direct, (
                f"{src} imports {top}; add requirement(\"{DISTRIBUTIONS[top]}\") to {name}'s deps"
            )


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _locked() -> dict[str, str]:
    """requirements_lock.txt's pins: normalized name -> version."""
    pins = {}
    for line in (ROOT / "requirements_lock.txt").read_text().splitlines():
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^ ;\\]+)", line)
        if match:
            pins[_normalized(match[1])] = match[2]
    return pins


def test_lock_file_pins_every_dependency_and_the_test_extra():
    """MODULE.bazel's pip hub installs requirements_lock.txt: it must pin everything
    pyproject.toml's dependencies and test extra name (and agree with its == pins)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked = _locked()
    for spec in project["dependencies"] + project["optional-dependencies"]["test"]:
        name = _normalized(re.split(r"[<>=!~\[ ;]", spec, maxsplit=1)[0])
        assert name in locked, f"requirements_lock.txt lacks {name} ({spec}): regenerate it (see MODULE.bazel)"
        pinned = re.search(r"==\s*([^,; ]+)", spec)
        assert not pinned or locked[name] == pinned[1], f"pyproject.toml pins {spec}, the lock has {locked[name]}"
    for dep in {d for t in _targets().values() for d in t.get("deps", []) if d.startswith("pip:")}:
        assert _normalized(dep[4:]) in locked, f"BUILD needs {dep[4:]}, which requirements_lock.txt does not pin"


def test_workspace_files_give_the_hubs_build_loads():
    """BUILD loads @rules_python and @pip: MODULE.bazel declares both (pip from the lock
    file), WORKSPACE marks the root for Bazel 4, and scripts/bazel_test.sh overrides both
    and runs existing tests."""
    build, module = (ROOT / "BUILD").read_text(), (ROOT / "MODULE.bazel").read_text()
    assert '"@pip//:requirements.bzl"' in build and '"@rules_python//python:defs.bzl"' in build
    assert 'bazel_dep(name = "rules_python"' in module and 'hub_name = "pip"' in module
    assert 'requirements_lock = "//:requirements_lock.txt"' in module and 'use_repo(pip, "pip")' in module
    assert (ROOT / "WORKSPACE").is_file()
    script = (ROOT / "scripts" / "bazel_test.sh").read_text()
    assert "--override_repository=rules_python=" in script and "--override_repository=pip=" in script
    fast = re.search(r"FAST_TESTS=\(([^)]*)\)", script)[1].split()
    tests = {name for name, target in _targets().items() if target["kind"] == "py_test"}
    assert fast and {label.removeprefix("//:") for label in fast} <= tests, f"unknown targets in {fast}"
