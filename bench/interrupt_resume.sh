#!/usr/bin/env bash
# Interrupt `polyret experiment --preset cpu` in the middle of a training, then run it again.
# Needs a finished `runs/experiment-cpu` (e.g. from `make experiment`): the hybrid model and its
# evaluation are deleted, retrained until just after checkpoint-10, killed with SIGTERM, and resumed.
# Usage: bash bench/interrupt_resume.sh [python-bin-dir]   (default .venv/bin)
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-.venv/bin}
RUN=runs/experiment-cpu
[ -f "$RUN/experiment.json" ] || { echo "run make experiment first ($RUN missing)" >&2; exit 2; }
rm -rf "$RUN/models/hybrid" "$RUN/evals/hybrid"
"$BIN/polyret" experiment --preset cpu > /tmp/interrupt-first.log 2>&1 &
pid=$!
until [ -d "$RUN/models/hybrid/seed0/checkpoints/checkpoint-10" ]; do
  kill -0 $pid 2>/dev/null || { echo "first run ended before checkpoint-10" >&2; exit 1; }
  sleep 1
done
sleep 12
kill -TERM $pid; wait $pid; echo "first run: exit $? (143 = killed by SIGTERM)"
echo "left behind: $(ls "$RUN/models/hybrid/seed0/checkpoints")"
start=$(date +%s)
"$BIN/polyret" experiment --preset cpu 2>&1 | tr '\r' '\n' | grep -E '^>>|finished steps|cached\)' | awk '!seen[$0]++'
echo "second run: exit ${PIPESTATUS[0]} in $(( $(date +%s) - start )) s"
