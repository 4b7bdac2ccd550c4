#!/usr/bin/env bash
# Creates ./.venv with inspectd and its dependencies. Sourced by quickstart.sh and test.sh; safe to rerun.
#   bash deploy/bootstrap.sh [EXTRAS]   ./.venv        with inspectd[RUNTIME,EXTRAS] (the daemon, the CLI, tests)
#   bash deploy/bootstrap.sh serve      ./.venv-serve  with inspectd[RUNTIME,serve] for `inspectd serve`: PyTriton
#                                       (bundled Triton server) pins numpy<2, so the server gets its own venv
#   INSPECTD_PYTHON  python interpreter to build the venv from (default: python3; needs >= 3.11 and, for serve,
#                    a shared libpython, which `inspectd serve` hands to Triton's Python stub)
#   INSPECTD_TORCH   pip spec for torch (default: the pinned release below; see README "GPU install")
#   INSPECTD_RUNTIME cpu | gpu: which onnxruntime wheel runs IS-Net (default: gpu when nvidia-smi exists)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${INSPECTD_PYTHON:-python3}
TORCH_SPEC=${INSPECTD_TORCH:-"torch==2.14.1 torchvision==0.29.1"}
RUNTIME=${INSPECTD_RUNTIME:-$(command -v nvidia-smi >/dev/null 2>&1 && echo gpu || echo cpu)}
EXTRAS=$RUNTIME${1:+,$1}
VENV=.venv
[ "${1:-}" = serve ] && VENV=.venv-serve

die() { echo "inspectd setup: $*" >&2; exit 1; }
command -v "$PY" >/dev/null || die "$PY not found; install Python 3.11 or newer"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "$PY is $("$PY" -V 2>&1); inspectd needs Python >= 3.11"
if [ "$VENV" = .venv-serve ]; then
  "$PY" -c 'import sysconfig, sys; sys.exit(not sysconfig.get_config_var("Py_ENABLE_SHARED"))' \
    || die "$PY has no shared libpython, which Triton's Python stub needs; use Debian's /usr/bin/python3 or a pyenv build with PYTHON_CONFIGURE_OPTS=--enable-shared (INSPECTD_PYTHON=...)"
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating $VENV"
  "$PY" -m venv "$VENV" || die "could not create a virtual environment (Debian: apt-get install -y python3-venv)"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
pyver() { "$1" -c 'import sys; print(sys.version_info[:2])' 2>/dev/null; }
if [ "$VENV" = .venv-serve ] && ! "$VENV/bin/python" -c 'import torch' 2>/dev/null \
   && .venv/bin/python -c 'import torch' 2>/dev/null && [ "$(pyver .venv/bin/python)" = "$(pyver "$VENV/bin/python")" ]; then
  # same interpreter version as ./.venv: hard-link its torch + CUDA wheels instead of a second 5-6 GB copy
  .venv/bin/python deploy/share_packages.py "$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
    $(echo "$TORCH_SPEC" | sed 's/[=<>!~;[][^ ]*//g') || echo "==> could not share torch with .venv; installing a copy"
fi
if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  echo "==> installing $TORCH_SPEC"
  need_gb=7
  free_gb=$(df -Pk "$VENV" | awk 'NR == 2 { print int($4 / 1048576) }')
  if [ -z "${INSPECTD_TORCH:-}" ] && [ "${free_gb:-0}" -lt "$need_gb" ]; then
    die "only ${free_gb} GiB free on the disk holding $PWD/$VENV; $TORCH_SPEC (the CUDA build) and the other dependencies need about $need_gb GiB. Free some space (df -h $PWD), or set INSPECTD_TORCH to a smaller build (README \"GPU install\")"
  fi
  # shellcheck disable=SC2086
  "${PIP[@]}" install -q $TORCH_SPEC || die "installing torch failed ($TORCH_SPEC)"
fi
# the CPU and GPU onnxruntime wheels install the same module: keep only the one asked for
OTHER=$([ "$RUNTIME" = gpu ] && echo onnxruntime || echo onnxruntime-gpu)
if "${PIP[@]}" show -q "$OTHER" >/dev/null 2>&1; then
  echo "==> removing $OTHER (switching IS-Net to the $RUNTIME runtime)"
  "${PIP[@]}" uninstall -y -q "$OTHER"
fi
echo "==> installing inspectd${EXTRAS:+[$EXTRAS]} into $VENV"
"${PIP[@]}" install -q -e ".${EXTRAS:+[$EXTRAS]}" || die "installing inspectd failed"
"$VENV/bin/inspectd" --version
