#!/usr/bin/env bash
# The quick start of README.md: sets up .venv if needed, then runs the whole method (supernet
# training, evolutionary search, retraining, export) on the embedded digits data.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec python -m spos_tf.pipeline --flagfile=flags/quickstart.cfg "$@"
