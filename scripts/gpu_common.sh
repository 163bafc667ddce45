# Sourced by scripts/gpu_check.sh and scripts/gpu_study.sh (not run on its own): what both do first.
#   gpu_setup NAME "$@"   NAME: gpu_check or gpu_study; then the script's own arguments ([--smoke DATA_DIR]).
# Sets SMOKE (1 with --smoke), OUT (default NAME), WORK (default /tmp/NAME), PY (default python3), LOGS and
# RUNS (under WORK), DATA (the --smoke folder; on a GPU, gpu_pack/'s shards unpacked into WORK/data), and
# exports GPT2_BPE_DIR when gpu_pack/ carries the GPT-2 BPE files. On a machine without CUDA and without
# --smoke it stops with one line saying how to run the same path on a CPU.
gpu_setup() {
    local name=$1
    shift
    SMOKE=0
    if [ "${1:-}" = "--smoke" ]; then SMOKE=1; shift; fi
    OUT=${OUT:-$name}
    WORK=${WORK:-/tmp/$name}
    PY=${PYTHON:-python3}
    LOGS="$WORK/logs"; RUNS="$WORK/runs"
    if [ -d gpu_pack/gpt2 ]; then export GPT2_BPE_DIR="$PWD/gpu_pack/gpt2"; fi
    if [ "$SMOKE" = 1 ]; then
        DATA=${1:?--smoke needs a prepared data folder}
        return
    fi
    if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
        echo "$name: $PY finds no CUDA GPU (torch.cuda.is_available() is False); on a CPU run: bash scripts/$name.sh --smoke DATA_DIR" >&2
        exit 1
    fi
    DATA="$WORK/data"
    "$PY" -m scripts.pack_gpu --unpack "$DATA" || exit 1
}
