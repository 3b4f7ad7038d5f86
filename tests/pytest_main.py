"""The `main` of every py_test in BUILD: runs the test file given as its argument under
pytest, so that `bazel test //:test_x` runs what `python -m pytest tests/test_x.py`
runs (a test file executed as a plain script would define its tests and exit 0).

Bazel's test environment is honoured: `--test_filter` (TESTBRIDGE_TEST_ONLY) becomes
`-k`, and the JUnit XML goes where Bazel asks (XML_OUTPUT_FILE).
"""

import os
import sys

import pytest


def pytest_args(files: list[str], environ: dict[str, str]) -> list[str]:
    args = ["-q", "-ra", "-p", "no:cacheprovider", *files]
    if environ.get("TESTBRIDGE_TEST_ONLY"):
        args += ["-k", environ["TESTBRIDGE_TEST_ONLY"]]
    if environ.get("XML_OUTPUT_FILE"):
        args.append(f"--junitxml={environ['XML_OUTPUT_FILE']}")
    return args


if __name__ == "__main__":
    sys.exit(pytest.main(pytest_args(sys.argv[1:], dict(os.environ))))
