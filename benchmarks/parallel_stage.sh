#!/usr/bin/env bash
# One stage of benchmarks/fidelity.py trained by several processes on one study, for a lease of a
# machine with many cores or a GPU (a small proxy leaves a GPU mostly idle: docs/fidelity.md):
#
#   benchmarks/parallel_stage.sh OUT PROCESSES SECONDS FIDELITY-ARGS...
#   benchmarks/parallel_stage.sh runs/ref48 12 480 --baseline mobilenet_v2 ... --stage reference --device cuda
#
# The first process trains in OUT; once it has written OUT/benchmark.json the other PROCESSES - 1
# join it (--join: the study's queue gives each run to one process). Each gets one torch thread
# unless OMP_NUM_THREADS is set. After SECONDS all still running get SIGTERM; the same command
# resumes, and the queue's reclaim retries the runs they left RUNNING (their heartbeats stop).
# nvidia-smi, where there is one, samples the GPU's utilisation and memory every second into
# OUT/smi.csv. Logs: OUT/log-N.txt.
set -u
if [ $# -lt 4 ]; then
    echo "usage: $0 OUT PROCESSES SECONDS FIDELITY-ARGS..." >&2
    exit 2
fi
out=$1 processes=$2 seconds=$3
shift 3
python=${PYTHON:-python3}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
here=$(dirname "$0")
mkdir -p "$out"
deadline=$((SECONDS + seconds))

smi=
if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits -l 1 > "$out/smi.csv" &
    smi=$!
fi

pids=()
"$python" "$here/fidelity.py" "$@" --out "$out" > "$out/log-1.txt" 2>&1 &
pids+=($!)
while [ ! -f "$out/benchmark.json" ] && kill -0 "${pids[0]}" 2> /dev/null; do sleep 1; done
for i in $(seq 2 "$processes"); do
    "$python" "$here/fidelity.py" "$@" --out "$out" --join > "$out/log-$i.txt" 2>&1 &
    pids+=($!)
done

running() { for p in "${pids[@]}"; do kill -0 "$p" 2> /dev/null && return 0; done; return 1; }
while running && [ $SECONDS -lt $deadline ]; do sleep 2; done
if running; then
    echo "parallel_stage: $seconds s are up: interrupting the processes still training (the same command resumes)"
    for p in "${pids[@]}"; do kill -TERM "$p" 2> /dev/null; done
fi
status=0
for p in "${pids[@]}"; do wait "$p" || status=$?; done
[ -n "$smi" ] && kill "$smi" 2> /dev/null
exit $status
