"""The `main` of every Bazel `py_test` (BUILD): runs pytest on the test modules given as arguments.

Bazel starts it in the runfiles copy of the workspace, so `tests/conftest.py` and the helper modules
`tests/_*.py` sit beside the module as in the source tree. Bazel's test protocol is honoured:
`XML_OUTPUT_FILE` receives a JUnit report, `TEST_TMPDIR` holds pytest's temporary folders and
`--test_filter=EXPR` (`TESTBRIDGE_TEST_ONLY`) becomes pytest's `-k EXPR`.

    python tools/pytest_main.py tests/spaces/test_costs.py [pytest options]
"""

import os
import sys

import pytest


def pytest_args(argv, environ=os.environ):
    """The pytest command line for `argv` (module paths, pytest options) under Bazel's `environ`."""
    args = ["-q", "-p", "no:cacheprovider", *argv]
    if environ.get("XML_OUTPUT_FILE"):
        args.append("--junitxml=" + environ["XML_OUTPUT_FILE"])
    if environ.get("TEST_TMPDIR"):
        args.append("--basetemp=" + os.path.join(environ["TEST_TMPDIR"], "pytest"))
    if environ.get("TESTBRIDGE_TEST_ONLY"):
        args += ["-k", environ["TESTBRIDGE_TEST_ONLY"]]
    return args


if __name__ == "__main__":
    sys.exit(pytest.main(pytest_args(sys.argv[1:])))
