#!/usr/bin/env bash
# The demo: gitopsd and metrics-adapter doing their main job on a local cluster, narrated with the
# real commands and their output (Git push -> dev / staging / prod, a bad release rolled back and
# held, an HPA on a request rate and a queue length). Sets everything up first (scripts/setup.sh).
#
#   ./scripts/demo.sh [--keep] [--until N] [--dir DIR]   run it (--keep: leave it running at the end;
#                                                         --until N: stop after act N, 0 = set-up only)
#   ./scripts/demo.sh --stop [--dir DIR]                  stop a demo left running with --keep
#   --skip-setup                                          skip scripts/setup.sh (already run)
# Only one demo runs in a directory at a time (default ~/.cache/gitopsd/demo); Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
setup=1
stop=0
for arg in "$@"; do
  case "$arg" in
    --skip-setup) setup=0 ;;
    --stop) stop=1; args+=("$arg") ;;
    *) args+=("$arg") ;;
  esac
done
if [ "$setup" = 1 ] && [ "$stop" = 0 ]; then
  scripts/setup.sh >&2
fi
exec .venv/bin/python -m e2e.demo "${args[@]}"
