#!/bin/sh
# The Python interpreter of Bazel's py_binary and py_test targets (BUILD's py_runtime `venv_py3`):
# the project's .venv, found from this script's real location in the source tree (Bazel runs it
# through a chain of runfiles symlinks), so that no absolute path is written down.
root="$(dirname "$(dirname "$(readlink -f "$0")")")"
if [ ! -x "$root/.venv/bin/python" ]; then
  echo "spos_tf: no virtual environment at $root/.venv; create it with: bash tools/env.sh" >&2
  exit 127
fi
exec "$root/.venv/bin/python" "$@"
