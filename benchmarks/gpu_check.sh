#!/usr/bin/env bash
# The CUDA paths of zoo, checked and timed on a real GPU in one command (issue 15; docs/benchmarks/gpu.md):
#
#     bash benchmarks/gpu_check.sh OUT
#
# Runs from a bare checkout with PYTHONPATH=. (nothing pip-installed; torch, torchvision and pytest must be there),
# on a GPU machine lent for a few minutes: the whole stays under GPU_CHECK_BUDGET_S seconds (default 450, so under
# 8 minutes on an H100/H200 with Python's start-up), every step under `timeout`. A failing or timed-out step does
# not stop the next one. Steps, in order:
#
#   pytest          pytest -m cuda -q (tests/test_cuda.py: placement, bf16 auto, fp16 + scaler + resume, GPU->CPU
#                   checkpoints, compile)
#   bench_fit       benchmarks/bench_fit.py --device cuda --part speed on Fashion-MNIST-shaped synthetic data:
#                   zoo.fit against the hand loop (same recipe), fit defaults in fp32 / bf16 / fp16, notebook loop
#   bench_precision benchmarks/bench_precision.py --device cuda --batch 256: bf16 and fp16 against fp32 per family
#   gpu_loader      benchmarks/bench_gpu_loader.py --part loader: ResNet-20 on 50,000 CIFAR-shaped images, zoo's
#                   GPU-resident loader against TensorDataset + DataLoader(pin_memory=True), peak memory
#   compile         benchmarks/bench_gpu_loader.py --part compile: ResNet-20 and vit_tiny_patch16, torch.compile
#                   off / on, first-step seconds and steady images/s
#
# OUT receives six files: summary.md (environment, each step's exit status and seconds, the figures; written as
# the steps finish), results.json (every step's JSON, merged), and pytest.log, bench_fit.log,
# bench_precision.log, bench_gpu_loader.log. Without a CUDA GPU it says why, writes that into OUT/summary.md and
# exits 0; otherwise it exits 1 when a step failed. GPU_CHECK_FORCE_CPU=1 runs every step on the CPU at tiny
# sizes instead (a dry run of this script's plumbing; the figures mean nothing).

set -u -o pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: bash benchmarks/gpu_check.sh OUT_DIR" >&2
    exit 2
fi
mkdir -p "$1" || exit 2
OUT=$(cd "$1" && pwd) || exit 2
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2 # the repository root
ROOT=$(pwd)
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 ZOO_PROGRESS=0
PY=${PYTHON:-python}
command -v "$PY" >/dev/null 2>&1 || PY=python3
BUDGET=${GPU_CHECK_BUDGET_S:-450}
FORCE_CPU=${GPU_CHECK_FORCE_CPU:-0}
SUMMARY="$OUT/summary.md"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX") || exit 2
trap 'rm -rf "$WORK"' EXIT
START=$SECONDS
COMMAND="bash benchmarks/gpu_check.sh $1"
for f in summary.md results.json pytest.log bench_fit.log bench_precision.log bench_gpu_loader.log; do
    rm -f "$OUT/$f" # this script's files from an earlier run; nothing else in OUT is touched
done

# -- is there a GPU? ------------------------------------------------------------------------------------------
probe=$("$PY" - 2>"$WORK/probe.err" <<'EOF'
import sys
try:
    import torch
except Exception as exc:
    print(f"torch does not import here ({type(exc).__name__}: {exc})")
    sys.exit(2)
if not torch.cuda.is_available():
    print("no CUDA GPU here (torch.cuda.is_available() is False): nothing to check")
    sys.exit(3)
p = torch.cuda.get_device_properties(0)
print(
    f"{torch.cuda.get_device_name(0)}, {p.total_memory / 2**30:.0f} GiB, compute capability {p.major}.{p.minor}, "
    f"{torch.cuda.device_count()} GPU(s); CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
    f"bf16 supported: {torch.cuda.is_bf16_supported()}"
)
EOF
)
probe_rc=$?
if [ $probe_rc -ne 0 ] && ! { [ $probe_rc -eq 3 ] && [ "$FORCE_CPU" = 1 ]; }; then
    reason=${probe:-"the CUDA probe failed (exit $probe_rc): $(tail -n 3 "$WORK/probe.err" | tr '\n' ' ')"}
    echo "gpu_check: $reason"
    {
        echo "# GPU check: skipped"
        echo
        echo "$reason"
        echo
        echo "- command: \`$COMMAND\`, $(date -u '+%Y-%m-%d %H:%M UTC'), host $(hostname 2>/dev/null || echo '?')"
    } >"$SUMMARY"
    # no GPU is not a failure of the check (exit 0); a Python without torch is
    [ $probe_rc -eq 3 ] && exit 0
    exit 1
fi
if [ "$FORCE_CPU" = 1 ]; then
    DEV=cpu
    probe="none: GPU_CHECK_FORCE_CPU=1, every step on the CPU at tiny sizes (a dry run; the figures mean nothing)"
else
    DEV=cuda
fi

# -- the environment, then the steps table, written as the steps finish --------------------------------------
versions=$("$PY" - 2>/dev/null <<'EOF'
import importlib, platform
parts = [f"Python {platform.python_version()}"]
for name in ("torch", "torchvision", "timm", "triton", "pytest"):
    try:
        parts.append(f"{name} {importlib.import_module(name).__version__}")
    except Exception:
        parts.append(f"{name} missing")
print(", ".join(parts))
EOF
)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo "n/a (no git repository here)")
dirty=$(git status --porcelain 2>/dev/null | head -c 1)
driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1)
{
    echo "# GPU check"
    echo
    echo "- GPU: $probe"
    echo "- driver: ${driver:-n/a}; $versions"
    echo "- commit: $commit${dirty:+ (with uncommitted changes)}; command: \`$COMMAND\`"
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); host: $(hostname 2>/dev/null || echo '?'), $(nproc 2>/dev/null || echo '?') CPUs; budget ${BUDGET} s"
    echo
    echo "| step | exit | status | seconds | command |"
    echo "|---|---|---|---|---|"
} >"$SUMMARY"

FAILED=0
# step NAME LOG CAP_SECONDS CMD...: run CMD under timeout (the smaller of CAP and what is left of the budget),
# appending its output to OUT/LOG, and add its row to the summary
step() {
    local name=$1 log=$2 cap=$3
    shift 3
    local left=$((BUDGET - (SECONDS - START) - 10))
    local limit=$((cap < left ? cap : left))
    local shown="$*"
    shown=${shown//"$WORK"/\$TMP}
    shown=${shown//"$OUT"/OUT}
    if [ $limit -lt 15 ]; then
        echo "== $name: skipped, ${left} s left of the ${BUDGET} s budget" | tee -a "$OUT/$log"
        echo "| $name | - | skipped: no time left | 0 | \`$shown\` |" >>"$SUMMARY"
        printf '%s\t%s\t%s\t%s\n' "$name" "" "skipped: no time left" 0 >>"$WORK/steps.tsv"
        FAILED=1
        return
    fi
    echo "== $name (limit ${limit} s): $shown" | tee -a "$OUT/$log"
    local t0=$SECONDS
    timeout -k 5 "$limit" "$@" >>"$OUT/$log" 2>&1
    local rc=$?
    local secs=$((SECONDS - t0)) status
    case $rc in
        0) status=ok ;;
        124 | 137) status="TIMED OUT after ${limit} s" ;;
        *) status="FAILED (exit $rc)" ;;
    esac
    [ $rc -eq 0 ] || FAILED=1
    echo "== $name: $status in ${secs} s" | tee -a "$OUT/$log"
    echo "| $name | $rc | $status | $secs | \`$shown\` |" >>"$SUMMARY"
    printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$status" "$secs" >>"$WORK/steps.tsv"
    merge_json
}

# results.json: the steps and every JSON a step wrote, merged (rewritten after each step)
merge_json() {
    "$PY" - "$WORK" "$OUT/results.json" <<'EOF' || true
import json, sys
from pathlib import Path
work, out = Path(sys.argv[1]), Path(sys.argv[2])
result = {"steps": []}
if (work / "steps.tsv").exists():
    for line in (work / "steps.tsv").read_text().splitlines():
        name, rc, status, secs = line.split("\t")
        result["steps"].append({"name": name, "exit": int(rc) if rc else None, "status": status, "seconds": int(secs)})
for path in sorted(work.glob("*.json")):
    try:
        result[path.stem] = json.loads(path.read_text())
    except ValueError as exc:
        result[path.stem] = {"unreadable": str(exc)}
out.write_text(json.dumps(result, indent=2))
EOF
}

if [ "$DEV" = cuda ]; then
    FIT_ARGS=(--reps 5 --notebook-batches 300 --precisions fp32 bf16 fp16)
    PREC_ARGS=(--batch 256 --repeat 5 --precisions bf16 fp16)
    LOADER_ARGS=()
else # the dry run: tiny sizes, fp16 left out (it needs CUDA)
    FIT_ARGS=(--reps 1 --notebook-batches 5 --synthetic-size 1024 --precisions fp32 bf16)
    PREC_ARGS=(--batch 8 --repeat 1 --models lenet5 vit_tiny_patch16)
    LOADER_ARGS=(--quick)
fi

# --continue-on-collection-errors: a test module that fails to import here must not stop the CUDA tests
step pytest pytest.log 150 "$PY" -m pytest -m cuda -q -p no:cacheprovider --durations=5 --continue-on-collection-errors
step bench_fit bench_fit.log 120 "$PY" benchmarks/bench_fit.py --part speed --device "$DEV" --data synthetic \
    "${FIT_ARGS[@]}" --json "$WORK/bench_fit.json"
step bench_precision bench_precision.log 90 "$PY" benchmarks/bench_precision.py --device "$DEV" \
    "${PREC_ARGS[@]}" --json "$WORK/bench_precision.json"
step gpu_loader bench_gpu_loader.log 90 "$PY" benchmarks/bench_gpu_loader.py --part loader --device "$DEV" \
    "${LOADER_ARGS[@]}" --json "$WORK/gpu_loader.json" --markdown "$WORK/gpu_loader.md"
step compile bench_gpu_loader.log 240 "$PY" benchmarks/bench_gpu_loader.py --part compile --device "$DEV" \
    "${LOADER_ARGS[@]}" --json "$WORK/compile.json" --markdown "$WORK/compile.md"

# -- the figures ----------------------------------------------------------------------------------------------
excerpt() { # excerpt TITLE LOG [PATTERN]: 40 lines of the log from the last line matching PATTERN, else its last 30
    local title=$1 log=$2 pattern=${3:-} from=""
    [ -s "$OUT/$log" ] || return 0
    [ -z "$pattern" ] || from=$(grep -n -- "$pattern" "$OUT/$log" | tail -n 1 | cut -d: -f1)
    echo
    echo "## $title"
    echo
    echo '```'
    if [ -n "$from" ]; then tail -n "+$from" "$OUT/$log" | head -n 40; else tail -n 30 "$OUT/$log"; fi
    echo '```'
}
{
    echo
    echo "Total: $((SECONDS - START)) s."
    excerpt "pytest -m cuda" pytest.log
    excerpt "bench_fit (LeNet-5, Fashion-MNIST-shaped synthetic data)" bench_fit.log "images/s, median"
    excerpt "bench_precision (one training step per model, ms)" bench_precision.log "^model "
    for part in gpu_loader compile; do
        if [ -s "$WORK/$part.md" ]; then
            echo
            cat "$WORK/$part.md"
        fi
    done
} >>"$SUMMARY"
merge_json
echo "gpu_check: done in $((SECONDS - START)) s; $OUT/summary.md"
[ $FAILED -eq 0 ] || echo "gpu_check: a step failed or timed out; see the summary"
exit $FAILED
