#!/usr/bin/env bash
# The test command of README.md: sets up .venv if needed, then runs the whole suite.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec python -m pytest -q -p no:cacheprovider tests "$@"
