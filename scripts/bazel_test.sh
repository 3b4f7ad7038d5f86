#!/usr/bin/env bash
# `bazel test` without a network: the BUILD's @rules_python and @pip are replaced
# (--override_repository) by two small local repositories written here, and the tests
# run on the given Python (a venv holding pyproject.toml's dependencies and the test
# extra). Works with Debian's bazel-bootstrap (Bazel 4.2.3) and later Bazel releases.
#
#     scripts/bazel_test.sh PYTHON [TARGET | BAZEL_TEST_OPTION ...]   # no target: the fast subset below
#     scripts/bazel_test.sh .venv/bin/python //:test_rope --test_filter=llama3
#
#   @rules_python  python/defs.bzl re-exports Bazel's native py_binary/py_library/py_test;
#                  python/BUILD holds a py_runtime for PYTHON, registered as the toolchain
#   @pip           requirement(name) -> @pip//:<name>, an empty py_library per package
#                  BUILD names: the packages come from PYTHON's site-packages (each is
#                  checked there first, so a missing one fails here, not in a test)
#
# Both are written under Bazel's output base for this workspace (`bazel info
# output_base`), never into the source tree. With a network, MODULE.bazel's
# rules_python and pip hub (requirements_lock.txt) are the real thing instead.
set -euo pipefail

FAST_TESTS=(//:test_build //:test_dictionary //:test_stopping //:test_rope)

usage() { echo "usage: $0 PYTHON [TARGET | BAZEL_TEST_OPTION ...]" >&2; exit 2; }
[ $# -ge 1 ] || usage
given=$1
python=$given
shift
args=("$@")  # targets and `bazel test` options; the fast subset when no target is named
[[ " ${args[*]} " == *" /"* || " ${args[*]} " == *" :"* ]] || args+=("${FAST_TESTS[@]}")

if ! command -v bazel > /dev/null; then
  echo "$0: no bazel on PATH (Debian/Ubuntu: apt-get install bazel-bootstrap; or bazelisk)" >&2
  exit 1
fi
if ! python=$(command -v "$python") || ! "$python" -c 'import sys' 2> /dev/null; then
  echo "$0: $given is not a Python interpreter" >&2
  exit 1
fi
python=$(cd "$(dirname "$python")" && pwd)/$(basename "$python")  # absolute, not resolved: a venv's python must keep its path
cd "$(dirname "$0")/.."

# Every distribution BUILD asks for must be installed for PYTHON.
mapfile -t distributions < <(grep -o 'requirement("[^"]*")' BUILD | sed 's/requirement("\(.*\)")/\1/' | sort -u)
"$python" - "${distributions[@]}" << 'EOF'
import importlib.metadata, sys
missing = []
for name in sys.argv[1:]:
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        missing.append(name)
if missing:
    sys.exit(f"{sys.executable} lacks {', '.join(missing)} (BUILD needs them): pip install -e '.[test]' there")
EOF

overrides=$(bazel info output_base 2> /dev/null)/pretty_jax_overrides
rm -rf "$overrides"
mkdir -p "$overrides/rules_python/python" "$overrides/pip"

cat > "$overrides/rules_python/WORKSPACE" << 'EOF'
workspace(name = "rules_python")
EOF
touch "$overrides/rules_python/BUILD"
cat > "$overrides/rules_python/python/defs.bzl" << 'EOF'
"""rules_python's py_* rules, as Bazel's native ones (written by scripts/bazel_test.sh)."""

def py_binary(**kwargs):
    native.py_binary(**kwargs)

def py_library(**kwargs):
    native.py_library(**kwargs)

def py_test(**kwargs):
    native.py_test(**kwargs)
EOF
cat > "$overrides/rules_python/python/BUILD" << EOF
# The interpreter the tests run on (written by scripts/bazel_test.sh).
load("@bazel_tools//tools/python:toolchain.bzl", "py_runtime_pair")

py_runtime(
    name = "runtime",
    interpreter_path = "$python",
    python_version = "PY3",
)

py_runtime_pair(
    name = "runtime_pair",
    py3_runtime = ":runtime",
)

toolchain(
    name = "toolchain",
    toolchain = ":runtime_pair",
    toolchain_type = "@bazel_tools//tools/python:toolchain_type",
)
EOF

cat > "$overrides/pip/WORKSPACE" << 'EOF'
workspace(name = "pip")
EOF
cat > "$overrides/pip/requirements.bzl" << 'EOF'
"""The pip hub's requirement(), every package taken from the interpreter's site-packages
(written by scripts/bazel_test.sh)."""

def requirement(name):
    return "@pip//:" + name.lower().replace("-", "_").replace(".", "_")
EOF
{
  echo "# One empty library per package BUILD names: they come from $python's site-packages."
  echo "# (written by scripts/bazel_test.sh)"
  for name in "${distributions[@]}"; do
    printf '\npy_library(\n    name = "%s",\n    visibility = ["//visibility:public"],\n)\n' "$(echo "$name" | tr 'A-Z.-' 'a-z__')"
  done
} > "$overrides/pip/BUILD"

# Bazel 4's own tools load @rules_cc//cc:defs.bzl and @rules_java//java:defs.bzl, from
# repositories it would download (Debian's bazel-rules-cc 0.0.4 is too new for its
# Bazel 4.2.3: it loads a symbol that Bazel lacks). For Bazel 4 (Debian's calls itself
# "bazel no_version") stand-ins re-export the native rules instead.
stand_in() {  # REPOSITORY PACKAGE RULE...: PACKAGE/defs.bzl re-exporting the native RULEs
  local repository=$1 package=$2
  shift 2
  mkdir -p "$overrides/$repository/$package"
  echo "workspace(name = \"$repository\")" > "$overrides/$repository/WORKSPACE"
  touch "$overrides/$repository/BUILD" "$overrides/$repository/$package/BUILD"
  {
    echo "\"\"\"$repository's rules, as Bazel's native ones (written by scripts/bazel_test.sh).\"\"\""
    for rule in "$@"; do
      printf '\ndef %s(**kwargs):\n    native.%s(**kwargs)\n' "$rule" "$rule"
    done
  } > "$overrides/$repository/$package/defs.bzl"
  extra+=(--override_repository="$repository=$overrides/$repository")
}
extra=()
if [[ $(bazel --version) =~ ^bazel\ (4\.|no_version) ]]; then
  stand_in rules_cc cc cc_binary cc_import cc_library cc_proto_library cc_test cc_toolchain cc_toolchain_suite objc_library
  stand_in rules_java java java_binary java_import java_library java_plugin java_runtime java_test java_toolchain
fi
# Every test depends on the coverage tools (a download), used only by `bazel coverage`.
mkdir -p "$overrides/remote_coverage_tools"
echo 'workspace(name = "remote_coverage_tools")' > "$overrides/remote_coverage_tools/WORKSPACE"
cat > "$overrides/remote_coverage_tools/BUILD" << 'EOF'
# Empty: `bazel coverage` is not available offline (written by scripts/bazel_test.sh).
filegroup(name = "coverage_report_generator", visibility = ["//visibility:public"])

filegroup(name = "lcov_merger", visibility = ["//visibility:public"])
EOF
extra+=(--override_repository=remote_coverage_tools="$overrides/remote_coverage_tools")

exec bazel test "${extra[@]}" \
  --override_repository=rules_python="$overrides/rules_python" \
  --override_repository=pip="$overrides/pip" \
  --extra_toolchains=@rules_python//python:toolchain \
  --test_output=errors \
  --symlink_prefix=/ \
  "${args[@]}"
