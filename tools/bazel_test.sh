#!/usr/bin/env bash
# Runs the whole test suite under Bazel: one py_test per tests/<stage>/test_*.py, one at a time, on the
# interpreter of .venv (see .bazelrc, WORKSPACE, BUILD). Installs nothing: it needs Debian's Bazel
#   apt-get install bazel-bootstrap bazel-platforms bazel-rules-java bazel-rules-proto bazel-skylib
# and .venv (bash tools/env.sh). Takes about as long as tools/test.sh (one process per module).
# Extra arguments go to `bazel test`, e.g. `bash tools/bazel_test.sh //:test_space //:test_costs`
# (targets replace //...) or `-- //... -//:test_multiworker`.
# Ends with the line 'bazel: N passed, M failed'; exits with Bazel's status.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v bazel >/dev/null || { echo "bazel_test.sh: no bazel; apt-get install bazel-bootstrap" >&2; exit 2; }
[ -x .venv/bin/python ] || { echo "bazel_test.sh: no .venv; bash tools/env.sh" >&2; exit 2; }

targets=()
options=()
for arg in "$@"; do
  case "$arg" in
    //*|-//*|--) targets+=("$arg") ;;
    *) options+=("$arg") ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(//...)

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
start=$SECONDS
status=0
bazel test --test_output=errors --local_test_jobs=1 --test_summary=short ${options[@]+"${options[@]}"} \
  "${targets[@]}" 2>&1 | tee "$log" || status=$?
passed=$(grep -cE '^//[^ ]+ +(\(cached\) )?PASSED' "$log" || true)
failed=$(grep -cE '^//[^ ]+ +(\(cached\) )?(FAILED|TIMEOUT|FLAKY|NO STATUS|INCOMPLETE|FAILED TO BUILD)' "$log" || true)
echo "bazel_test.sh: $((SECONDS - start)) s"
echo "bazel: $passed passed, $failed failed"
exit "$status"
