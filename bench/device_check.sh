#!/usr/bin/env bash
# Every GPU figure docs/benchmarks.md still lacks, as one prepared run for the device tool
# (one H100/H200, 15 minutes of device time per session, 10 minutes per command).
#
# On the device (open_clip is not installed there: carry the wheels, see
# ../.library/device/README.md):
#     run(command="bash bench/device_check.sh", carry=[".whl"], timeout_s=560)
# JSON lines land in $OUT/bench.jsonl, the full log in $OUT/log.txt.
#
# Here, on the CPU, `SMOKE=1 bash bench/device_check.sh` runs the same steps at CI size to
# check the script itself (minutes; the figures mean nothing).
set -uo pipefail
OUT=${OUT:-/tmp/device_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 MPLBACKEND=Agg
cd "$(dirname "$0")/.."

if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:${PYTHONPATH:-} || exit 1
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
PY=${PY:-python3}

step() {  # step NAME SECONDS CMD...: run with a time limit, JSON lines to bench.jsonl
    local name=$1 limit=$2
    shift 2
    echo "=== $name ($(date -u +%T))" | tee -a "$OUT/log.txt"
    timeout "$limit" "$@" 2>>"$OUT/log.txt" | tee -a "$OUT/log.txt" | grep '^{' >>"$OUT/bench.jsonl"
    echo "=== $name: exit ${PIPESTATUS[0]}" | tee -a "$OUT/log.txt"
}

if [ "${SMOKE:-0}" = 1 ]; then
    step extract 300 $PY bench/extract.py --size ci --device cpu
    step fusion 300 $PY bench/fusion.py --size ci --device cpu --repeat 2
    step train 300 $PY bench/train.py --size ci --device cpu
    exit 0
fi

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$OUT/log.txt"
$PY -c "import torch, open_clip; print('torch', torch.__version__, 'open_clip', open_clip.__version__)" \
    | tee -a "$OUT/log.txt"
# issue 3: ViT-L/14 extraction, end to end and encoder alone, with the fp16/bf16 cosine check
step extract_fp16 150 $PY bench/extract.py --size full --precision fp16
step extract_bf16 120 $PY bench/extract.py --size full --precision bf16 --skip decode
# issue 2: training step and test pass (small generated set: 322 x 2 rows, D = 768)
step train_fp32 90 $PY bench/train.py --size small --device cuda
step train_bf16 60 $PY bench/train.py --size small --device cuda --amp bf16
# issue 6: each fusion rule at the paper's size
step fusion 60 $PY bench/fusion.py --size paper --device cuda --repeat 5
echo "done ($(date -u +%T))" | tee -a "$OUT/log.txt"
