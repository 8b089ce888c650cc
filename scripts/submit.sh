#!/usr/bin/env bash
# Submit a tune job to a Ray cluster with `ray job submit` (token auth kept on).
#
#   scripts/submit.sh [EXPERIMENT] [--address URL] [--storage-path PATH] [-- extra ray args]
#
#   EXPERIMENT       experiment YAML (default: tune_configs/compare.yaml)
#   --address URL    the cluster's dashboard/job address
#                    (default: $RAY_JOB_ADDRESS or http://127.0.0.1:8265, a local head)
#   --storage-path   where checkpoints go; on a multi-node cluster a path every node can
#                    reach (NFS or similar). Default: $STORAGE_PATH or ./results.
#
# The working directory (this checkout, without .venv/results/.git) is uploaded, so the
# project's code is importable on every node; the cluster's Python needs the project's
# dependencies (run scripts/setup.sh there, or use an image that has them).
set -euo pipefail
cd "$(dirname "$0")/.."

experiment="tune_configs/compare.yaml"
address="${RAY_JOB_ADDRESS:-http://127.0.0.1:8265}"
storage="${STORAGE_PATH:-$PWD/results}"
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --address) address="$2"; shift 2 ;;
    --storage-path) storage="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -*) echo "error: unknown option $1" >&2; exit 2 ;;
    *) experiment="$1"; shift ;;
  esac
done
[ -f "$experiment" ] || { echo "error: $experiment: experiment file not found" >&2; exit 2; }

RAY="${RAY:-.venv/bin/ray}"
# Ray 2.60 enables token authentication; the CLI sends the token from
# ~/.ray/auth_token (or $RAY_AUTH_TOKEN) when RAY_AUTH_MODE=token.
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}"
exec "$RAY" job submit \
  --address "$address" \
  --working-dir . \
  --runtime-env-json '{"excludes": [".venv", "results", ".git", "*.egg-info"]}' \
  "${extra[@]}" \
  -- python -m rllib_project tune "$experiment" --storage-path "$storage"
