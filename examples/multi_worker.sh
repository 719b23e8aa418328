#!/usr/bin/env bash
# Data-parallel fine-tuning with several workers: N processes run the same
# `keras-albert finetune --strategy multi_worker ...` command, each with its own
# TF_CONFIG (MultiWorkerMirroredStrategy); only the chief (worker 0) writes --output.
#
#   # N workers on this machine (free ports on 127.0.0.1), your finetune arguments:
#   N=2 examples/multi_worker.sh --model run/ --train train.tsv --eval dev.tsv \
#       --batch 32 --output sst2_2workers/
#
#   # CI size: bert_tiny with the real vocabulary, 64 SST-2 rows, 1 epoch, seq 32
#   # (any arguments you add override these; --output defaults to a temporary dir):
#   REDUCED=1 examples/multi_worker.sh
#
#   # Several machines: print each machine's TF_CONFIG and command, start nothing:
#   HOSTS="host1:12345 host2:12345" examples/multi_worker.sh --model ... --output /shared/run
#
# Environment:
#   N            workers to start on this machine (2)
#   REDUCED=1    the CI-size run above
#   HOSTS        "host:port host:port ...": print the commands for several machines
#   LOG_DIR      one log per worker (default: OUTPUT.logs beside --output)
#   KERAS_ALBERT the command to run (default: keras-albert on PATH, else the
#                repository's .venv/bin/keras-albert, else python -m keras_albert.cli)
#   PYTHON       the interpreter that picks free ports (default: python3)
#   KERAS_ALBERT_DATA  the shared data folder (REDUCED=1; default ../shared/data)
#
# --batch is the global batch: every worker builds the same batches and keeps its
# slice, so it must be a multiple of N. If any worker fails, the others are stopped
# (they would wait forever in their next collective) and the script exits 1; Ctrl-C
# stops them all. Started again with the same arguments (or --resume), the job
# continues from the chief's last checkpoint in OUTPUT/backup. The last line of
# output is one JSON object: workers, exit codes, output directory, logs.
# docs/scaling.md is the guide.
set -euo pipefail

if (( BASH_VERSINFO[0] < 5 || (BASH_VERSINFO[0] == 5 && BASH_VERSINFO[1] < 1) )); then
    echo "multi_worker.sh needs bash >= 5.1 (wait -n -p); this is $BASH_VERSION" >&2
    exit 2
fi

N=${N:-2}
REDUCED=${REDUCED:-0}
PYTHON=${PYTHON:-python3}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export KERAS_BACKEND=${KERAS_BACKEND:-tensorflow}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}

if ! [[ $N =~ ^[1-9][0-9]*$ ]]; then
    echo "N must be a positive integer; got '$N'" >&2
    exit 2
fi

# The command every worker runs.
if [[ -n ${KERAS_ALBERT:-} ]]; then
    read -r -a command <<<"$KERAS_ALBERT"
elif command -v keras-albert >/dev/null 2>&1; then
    command=(keras-albert)
elif [[ -x $ROOT/.venv/bin/keras-albert ]]; then
    command=("$ROOT/.venv/bin/keras-albert")
else
    command=("$PYTHON" -m keras_albert.cli)
fi

# The CI-size run: arguments the caller's own arguments come after (argparse keeps
# the last value of an option, so the caller's win).
defaults=()
output=""
for ((i = 1; i <= $#; i++)); do
    case "${!i}" in
        --output) next=$((i + 1)); output=${!next:-} ;;
        --output=*) output=${!i#--output=} ;;
    esac
done
if [[ $REDUCED == 1 ]]; then
    data=${KERAS_ALBERT_DATA:-$(cd "$ROOT/.." && pwd)/shared/data}
    defaults=(--model bert_tiny --vocab "$data/vocab/bert_uncased_vocab.txt"
              --train "$data/sst2/train.tsv" --limit 64 --epochs 1 --seq 32 --batch 16
              --learning-rate 1e-3 --quiet)
    if [[ -z $output && -n ${HOSTS:-} ]]; then
        output=multi_worker_run  # only printed
        defaults+=(--output "$output")
    elif [[ -z $output ]]; then
        output=$(mktemp -d "${TMPDIR:-/tmp}/multi_worker_XXXXXX")/run
        defaults+=(--output "$output")
    fi
fi
if [[ -z $output ]]; then
    echo "multi_worker.sh: pass the finetune arguments, --output included (or REDUCED=1)" >&2
    exit 2
fi

tf_config() {  # tf_config CLUSTER_JSON INDEX
    printf '{"cluster": {"worker": %s}, "task": {"type": "worker", "index": %d}}' "$1" "$2"
}

json_list() {  # json_list ITEM... -> ["ITEM", ...]
    local out="" item
    for item in "$@"; do out+="${out:+, }\"$item\""; done
    printf '[%s]' "$out"
}

# Several machines: the same command on every machine, its own task index each.
if [[ -n ${HOSTS:-} ]]; then
    read -r -a hosts <<<"$HOSTS"
    cluster=$(json_list "${hosts[@]}")
    echo "# Run on each machine (the same arguments, the same data paths; --output on"
    echo "# storage every machine can reach, or at least the chief's, worker 0):"
    for ((i = 0; i < ${#hosts[@]}; i++)); do
        echo
        echo "# on ${hosts[i]%:*}:"
        printf "TF_CONFIG='%s' \\\\\n    %s finetune --strategy multi_worker" \
            "$(tf_config "$cluster" "$i")" "${KERAS_ALBERT:-keras-albert}"
        if (( ${#defaults[@]} + $# )); then printf ' %q' "${defaults[@]}" "$@"; fi
        echo
    done
    exit 0
fi

# N workers on this machine: N free ports on 127.0.0.1, held open together so they
# differ (another program could still take one before TensorFlow binds it; then the
# worker fails to start and the script says so).
read -r -a ports <<<"$("$PYTHON" - "$N" <<'EOF'
import socket, sys
sockets = [socket.socket() for _ in range(int(sys.argv[1]))]
for handle in sockets:
    handle.bind(("127.0.0.1", 0))
print(" ".join(str(handle.getsockname()[1]) for handle in sockets))
EOF
)"
addresses=()
for port in "${ports[@]}"; do addresses+=("127.0.0.1:$port"); done
cluster=$(json_list "${addresses[@]}")

LOG_DIR=${LOG_DIR:-${output%/}.logs}
mkdir -p "$LOG_DIR"

pids=()     # every worker, in index order
pending=()  # the workers not yet waited for: the only ones ever signalled, so a
            # finished worker's (possibly reused) pid is never touched
stop_workers() {
    local pid alive
    for pid in "${pending[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    # A worker blocked in a collective may take a moment; then SIGKILL.
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        alive=0
        for pid in "${pending[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || return 0
        sleep 1
    done
    for pid in "${pending[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}
# Background jobs of a script ignore Ctrl-C's SIGINT, so the workers are stopped here;
# EXIT also covers `set -e` and the failure path below.
trap 'echo "multi_worker.sh: interrupted, stopping the workers" >&2; stop_workers; trap - EXIT; exit 130' INT TERM
trap 'stop_workers' EXIT

echo "cluster: $cluster"
for ((i = 0; i < N; i++)); do
    config=$(tf_config "$cluster" "$i")
    TF_CONFIG=$config "${command[@]}" finetune --strategy multi_worker "${defaults[@]}" "$@" \
        >"$LOG_DIR/worker$i.log" 2>&1 &
    pids+=("$!")
    pending+=("$!")
    echo "worker $i: pid $!, TF_CONFIG=$config, log $LOG_DIR/worker$i.log"
done

declare -A index_of
for ((i = 0; i < N; i++)); do index_of[${pids[i]}]=$i; done
codes=()
for ((i = 0; i < N; i++)); do codes+=(null); done
failed=""
while ((${#pending[@]})); do
    finished=""
    code=0
    wait -n -p finished "${pending[@]}" || code=$?
    if [[ -z $finished ]]; then
        echo "multi_worker.sh: lost track of the workers (wait exited with $code)" >&2
        exit 1
    fi
    i=${index_of[$finished]}
    codes[i]=$code
    still=()
    for pid in "${pending[@]}"; do [[ $pid == "$finished" ]] || still+=("$pid"); done
    pending=("${still[@]}")
    if ((code != 0)); then
        failed=$i
        echo "worker $i failed (exit $code); its log ends with:" >&2
        tail -n 15 "$LOG_DIR/worker$i.log" >&2 || true
        echo "stopping the other workers" >&2
        stop_workers
        break
    fi
    echo "worker $i finished"
done
trap - EXIT

# Collect the exit codes of the workers stopped above (SIGTERM: 143).
for ((i = 0; i < N; i++)); do
    if [[ ${codes[i]} == null ]]; then
        code=0
        wait "${pids[i]}" 2>/dev/null || code=$?
        codes[i]=$code
    fi
done
pending=()
codes_json=$(IFS=,; echo "[${codes[*]}]")
codes_json=${codes_json//,/, }

if [[ -z $failed ]]; then
    echo "the chief (worker 0) wrote $output:"
    ls "$output"
    # The chief's last line is finetune's JSON summary.
    echo "summary: $(grep '^{' "$LOG_DIR/worker0.log" | tail -n 1)"
    ok=true
else
    ok=false
fi
printf '{"ok": %s, "workers": %d, "exit_codes": %s, "output": "%s", "logs": "%s"}\n' \
    "$ok" "$N" "$codes_json" "$output" "$LOG_DIR"
[[ $ok == true ]]
