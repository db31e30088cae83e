#!/usr/bin/env bash
# The test command of README.md: sets up .venv if needed, then runs the whole suite and lists its
# 25 slowest tests and fixtures last (CI time is watched: see benchmarks/RESULTS.md, "Test time").
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec python -m pytest -q -p no:cacheprovider --durations=25 tests "$@"
