#!/usr/bin/env bash
# Submit a tune run to a Ray cluster as a job (`ray job submit`; token auth stays on).
#
#   scripts/submit.sh [EXPERIMENT] [options] [-- extra `ray job submit` arguments]
#   scripts/submit.sh --resume EXPERIMENT_DIR [options]
#
#   EXPERIMENT          experiment YAML (default: tune_configs/compare.yaml)
#   --resume DIR        continue a stopped or interrupted experiment (runs `tune --resume DIR`
#                       as a job; a finished run without best.json gets it, nothing retrains)
#   --address URL       the cluster's job address (default: $RAY_JOB_ADDRESS or
#                       http://127.0.0.1:8265, a head on this machine)
#   --storage-path P    where the experiment folder goes (default: $STORAGE_PATH or
#                       ./results); with several machines, a path every node can reach
#   --python PATH       interpreter that runs the job's driver on the head node (default:
#                       this checkout's .venv/bin/python, as an absolute path: the head must
#                       have the project's environment at the same path, which is the case
#                       for a head on this machine; for a cluster built from an image whose
#                       default Python has the dependencies, pass --python python)
#   --no-wait           return once the job is accepted; prints its id for
#                       `ray job status|logs|stop ID`
#
# The checkout (without .venv, results, .git) is uploaded as the job's working directory,
# so every node imports this project's code from it. A job's entrypoint is a shell command
# run with the environment of the Ray node, not of this shell: that is why the driver's
# interpreter is named explicitly instead of relying on `python` being on the node's PATH.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"

fail() { echo "error: $*" >&2; exit 2; }

# A path as the job's driver must see it: relative to the uploaded checkout when it lies
# inside it, else absolute (it must then exist at that path on the head node).
job_path() {
  local absolute
  absolute="$(realpath -m -- "$1")"
  case "$absolute" in
    "$repo"/*) echo "${absolute#"$repo"/}" ;;
    *) echo "$absolute" ;;
  esac
}

experiment=""
resume=""
address="${RAY_JOB_ADDRESS:-http://127.0.0.1:8265}"
storage="${STORAGE_PATH:-$repo/results}"
python="$repo/.venv/bin/python"
wait_flag=()
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --address) [ $# -ge 2 ] || fail "--address needs a URL"; address="$2"; shift 2 ;;
    --storage-path) [ $# -ge 2 ] || fail "--storage-path needs a path"; storage="$2"; shift 2 ;;
    --python) [ $# -ge 2 ] || fail "--python needs a path"; python="$2"; shift 2 ;;
    --resume) [ $# -ge 2 ] || fail "--resume needs an experiment folder"; resume="$2"; shift 2 ;;
    --no-wait) wait_flag=(--no-wait); shift ;;
    --) shift; extra=("$@"); break ;;
    -*) fail "unknown option $1 (see the comment at the top of scripts/submit.sh)" ;;
    *) [ -z "$experiment" ] || fail "more than one experiment given"; experiment="$1"; shift ;;
  esac
done

if [ -n "$resume" ]; then
  [ -z "$experiment" ] || fail "give either an experiment file or --resume DIR, not both"
  [ -f "$resume/experiment.json" ] || fail "$resume: not an experiment folder (no experiment.json)"
  command=(tune --resume "$(realpath -- "$resume")")
else
  experiment="${experiment:-$repo/tune_configs/compare.yaml}"
  [ -f "$experiment" ] || fail "$experiment: experiment file not found"
  command=(tune "$(job_path "$experiment")" --storage-path "$(realpath -m -- "$storage")")
fi

ray_cli="$repo/.venv/bin/ray"
[ -x "$ray_cli" ] || fail "$ray_cli not found: run 'bash scripts/setup.sh' first"
if [[ "$python" == /* ]] && [ ! -x "$python" ]; then
  fail "$python not found: run 'bash scripts/setup.sh' first, or pass --python"
fi

# Ray 2.60 enables token authentication; the CLI sends the token from ~/.ray/auth_token
# (or $RAY_AUTH_TOKEN) when RAY_AUTH_MODE=token.
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}"
errors="$(mktemp)"
trap 'rm -f "$errors"' EXIT

# `ray job stop` sends the driver SIGTERM, on which the run saves its state whole and
# stops its trials (rllib_project/graceful_stop.py); Ray SIGKILLs a driver still running
# RAY_JOB_STOP_WAIT_TIME_S seconds later (Ray's default, 3, can cut that save short).
stop_wait="${RAY_JOB_STOP_WAIT_TIME_S:-60}"
[[ "$stop_wait" =~ ^[0-9]+$ ]] || fail "RAY_JOB_STOP_WAIT_TIME_S must be a whole number of seconds"
runtime_env='{"excludes": [".venv", "results", ".git", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis"], "env_vars": {"RAY_JOB_STOP_WAIT_TIME_S": "'"$stop_wait"'"}}'

cd "$repo"
# A head that has just started may not have its job agent up yet ("No available agent to
# submit job"); nothing was submitted then, so that one error is retried for a minute.
for attempt in $(seq 1 30); do
  job_id="rllib-project-$(date -u +%Y%m%d-%H%M%S)-$$-$attempt"
  set +e
  {
    "$ray_cli" job submit \
      --address "$address" \
      --submission-id "$job_id" \
      --working-dir . \
      --runtime-env-json "$runtime_env" \
      "${wait_flag[@]}" \
      "${extra[@]}" \
      -- "$python" -m rllib_project "${command[@]}" 2>&1 1>&3 | tee "$errors" >&2
    status=${PIPESTATUS[0]}
  } 3>&1
  set -e
  if [ "$status" -eq 0 ]; then
    echo "job id: $job_id"
    exit 0
  fi
  grep -q "No available agent to submit job" "$errors" || exit "$status"
  echo "the cluster's job agent is not ready yet; retrying ($attempt/30)" >&2
  sleep 2
done
exit "$status"
