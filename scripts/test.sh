#!/usr/bin/env bash
# The whole test suite, set-up included: Debian packages, .venv, control-plane binaries
# (built once per machine into ~/.cache/gitopsd), then pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  # pytest's "no tests were collected": a suite that ran nothing has proven nothing.
  echo "error: pytest collected no tests (exit 5); treating as a failure" >&2
  exit 1
fi
exit "$rc"
