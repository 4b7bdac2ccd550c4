#!/usr/bin/env bash
# The one prepared GPU benchmark: full-size models (random weights of the released architectures unless real ones
# are installed), 4 simulated cameras at 1280x960, in up to three runs:
#   1. foreground = full: the whole frame is the part, so IS-Net is skipped and the figures are the tile networks
#      (CLIPSeg, SAM, the reference backbone) on the GPU alone; every variant, then a short soak;
#   1b. the same daemon with each camera paced at PACED_RATE frames/s (4 x 7.5 = the 30 frames/s target), for
#      the latency target: unpaced, the cameras push as fast as the daemon accepts and latency is queueing;
#   2. foreground = isnet (what a camera gets): IS-Net on whatever onnxruntime provides (CUDA with
#      onnxruntime-gpu, else the CPU), fewer frames. Skipped when MODELS_DIR/isnet/isnet.onnx is missing.
# Writes JSON + tables to $OUT (or ./bench-out). Runs on a bare machine with this repo copied:
#   - Python >= 3.11 with torch preinstalled (a venv is made with --system-site-packages so that torch is reused),
#     or torch installable: INSPECTD_TORCH="torch==2.14.1" and, offline, PIP_FIND_LINKS=/path/to/wheels PIP_NO_INDEX=1;
#   - or, offline with torch and transformers preinstalled: WHEELS=/path/to/wheels holding what else inspectd needs
#     (paho-mqtt, pyzmq, pydantic-settings, structlog, segment-anything, open-clip-torch, ...); they are unpacked
#     into SITE (default /tmp/inspectd-site) and inspectd runs from this checkout, nothing else is installed;
#   - IS-Net weights: MODELS_DIR/isnet/isnet.onnx (copy a models folder over), else npm to fetch them (run 2);
#   - mosquitto on PATH or in /usr/sbin (apt-get install -y mosquitto), for the real MQTT publish path.
# Knobs: FRAMES (per camera and variant, default 20), SIZE (1280x960), CAMERAS (4), SOAK_S (60),
#        ONLY (run 1's variants), ISNET_FRAMES (5), ISNET_ONLY (bare,daemon,reference),
#        FULL_TIMEOUT_S (run 1, default 330), ISNET_TIMEOUT_S (run 2, default 180),
#        RUNS (which runs, default "full,paced,isnet"; leave out isnet when its weights cannot reach the machine),
#        PACED_RATE (run 1b's frames/s per camera, 7.5), PACED_FRAMES (per camera, 150), PACED_TIMEOUT_S (120).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-$PWD/bench-out}
MODELS_DIR=${MODELS_DIR:-$PWD/models}
FRAMES=${FRAMES:-20}
SIZE=${SIZE:-1280x960}
CAMERAS=${CAMERAS:-4}
SOAK_S=${SOAK_S:-60}
ONLY=${ONLY:-bare,daemon,no_batching,no_text_cache,separate_clip,reference}
ISNET_FRAMES=${ISNET_FRAMES:-5}
ISNET_ONLY=${ISNET_ONLY:-bare,daemon,reference}
FULL_TIMEOUT_S=${FULL_TIMEOUT_S:-330}
ISNET_TIMEOUT_S=${ISNET_TIMEOUT_S:-180}
RUNS=${RUNS:-full,paced,isnet}
PACED_RATE=${PACED_RATE:-7.5}
PACED_FRAMES=${PACED_FRAMES:-150}
PACED_TIMEOUT_S=${PACED_TIMEOUT_S:-120}
BENCH_DIR=${BENCH_DIR:-$HOME/.cache/inspectd/bench}
PY=${INSPECTD_PYTHON:-python3}
mkdir -p "$OUT"
die() { echo "gpu_bench: $*" | tee -a "$OUT/gpu_bench.err" >&2; exit 1; }
step() { echo "[gpu_bench $(date +%H:%M:%S)] $*"; }

step "machine"
{ nvidia-smi || true; "$PY" -V; nproc; free -g || true; } > "$OUT/machine.txt" 2>&1
if [ -n "${WHEELS:-}" ]; then
  SITE=${SITE:-/tmp/inspectd-site}
  step "unpacking $(ls "$WHEELS"/*.whl | wc -l) wheels from $WHEELS into $SITE (torch and the rest: preinstalled)"
  "$PY" -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile --upgrade \
    --target "$SITE" "$WHEELS"/*.whl || die "the wheels in $WHEELS do not install on $("$PY" -V)"
  export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
  RUNPY=$PY
else
  if [ ! -x .venv/bin/python ]; then
    step "creating .venv (reusing system torch when present)"
    "$PY" -m venv --system-site-packages .venv || die "cannot create a venv (apt-get install -y python3-venv)"
  fi
  PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
  if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
    step "installing ${INSPECTD_TORCH:-torch}"
    # shellcheck disable=SC2086
    "${PIP[@]}" install ${INSPECTD_TORCH:-torch} || die "torch is neither installed nor installable (set PIP_FIND_LINKS)"
  fi
  .venv/bin/python -c 'import inspectd' 2>/dev/null || "${PIP[@]}" install -e . || die "pip install -e . failed"
  if ! .venv/bin/python -c 'import onnxruntime as o, sys; sys.exit("CUDAExecutionProvider" not in o.get_available_providers())'; then
    step "onnxruntime has no CUDA provider: trying onnxruntime-gpu (else IS-Net runs on the CPU and caps frames/s)"
    "${PIP[@]}" uninstall -y onnxruntime >/dev/null 2>&1 || true
    "${PIP[@]}" install onnxruntime-gpu || { step "onnxruntime-gpu not installable; IS-Net stays on CPU"; "${PIP[@]}" install onnxruntime; }
  fi
  RUNPY=.venv/bin/python
fi
"$RUNPY" - <<'EOF' 2>&1 | tee -a "$OUT/machine.txt" || die "torch sees no CUDA device, or inspectd does not import"
import sys, torch, onnxruntime, transformers
import inspectd.cli.main, inspectd.service.daemon  # noqa: F401  the command line and the daemon import
print("torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__)
print("onnxruntime", onnxruntime.__version__, onnxruntime.get_available_providers())
if not torch.cuda.is_available():
    sys.exit("torch sees no CUDA device")
print("gpu", torch.cuda.get_device_name(0))
EOF
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || apt-get install -y -q mosquitto >/dev/null 2>&1 \
  || die "mosquitto missing: apt-get install -y mosquitto"

bench() {  # NAME TIMEOUT_S ARGS...: one bench run, its table, JSON and log under $OUT
  local name=$1 limit=$2 rc=0
  shift 2
  timeout "$limit" "$RUNPY" -m inspectd.cli bench --models full --device cuda --models-dir "$MODELS_DIR" \
    --bench-dir "$BENCH_DIR" --cameras "$CAMERAS" --size "$SIZE" --out "$OUT/$name.json" "$@" \
    > "$OUT/$name.txt" 2> "$OUT/$name.log" || rc=$?
  tail -n 25 "$OUT/$name.log"
  cat "$OUT/$name.txt"
  step "$name: exit $rc"
  return "$rc"
}

status=0
if [[ ,$RUNS, == *,full,* ]]; then
  step "run 1: foreground full, $CAMERAS cameras x $FRAMES frames at $SIZE ($ONLY), soak ${SOAK_S}s"
  bench gpu-full "$FULL_TIMEOUT_S" --foreground full --frames "$FRAMES" --only "$ONLY" --duration "$SOAK_S" || status=1
fi
if [[ ,$RUNS, == *,paced,* ]]; then
  step "run 1b: foreground full, daemon only, $PACED_FRAMES frames per camera paced at $PACED_RATE frames/s"
  bench gpu-paced "$PACED_TIMEOUT_S" --foreground full --frames "$PACED_FRAMES" --only daemon --rate "$PACED_RATE" \
    || status=1
fi
if [[ ,$RUNS, != *,isnet,* ]]; then
  step "run 2 skipped: RUNS=$RUNS"
elif [ -f "$MODELS_DIR/isnet/isnet.onnx" ] || command -v npm >/dev/null; then
  step "run 2: foreground isnet, $CAMERAS cameras x $ISNET_FRAMES frames ($ISNET_ONLY)"
  bench gpu-isnet "$ISNET_TIMEOUT_S" --foreground isnet --frames "$ISNET_FRAMES" --only "$ISNET_ONLY" || status=1
else
  step "run 2 skipped: no $MODELS_DIR/isnet/isnet.onnx and no npm"
fi
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv >> "$OUT/machine.txt" 2>&1 || true
step "done (exit $status); results in $OUT"
exit $status
