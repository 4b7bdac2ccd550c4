#!/usr/bin/env bash
# Install everything the test suite needs (Python deps, the Triton serve venv, Mosquitto, Chromium, IS-Net from
# npm) and run lint + tests.
# Extra arguments go to pytest, e.g. `bash deploy/test.sh -k mqtt`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
die() { echo "inspectd test setup: $*" >&2; exit 1; }
if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
  echo "==> installing mosquitto (apt)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get install -y -q mosquitto >/dev/null 2>&1 \
    || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q mosquitto >/dev/null; } \
    || die "could not install mosquitto; the MQTT tests need it (apt-get install -y mosquitto)"
fi
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "==> installing chromium + chromium-driver (apt; the console's browser tests)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 \
    || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q chromium chromium-driver >/dev/null; } \
    || die "could not install chromium; the console browser tests need it (apt-get install -y chromium chromium-driver)"
fi
command -v npm >/dev/null || die "npm not found; the IS-Net tests install the real model from npm (apt-get install -y npm)"
bash deploy/bootstrap.sh dev
# `inspectd serve` (tests/test_triton.py starts it) runs from its own venv: PyTriton pins numpy<2
bash deploy/bootstrap.sh serve
export INSPECTD_SERVE_PYTHON="$PWD/.venv-serve/bin/python"
echo "==> ruff"
.venv/bin/ruff check inspectd tests deploy
.venv/bin/ruff format --check inspectd tests deploy
echo "==> import contracts (pyproject.toml [tool.importlinter], docs/architecture.md)"
.venv/bin/lint-imports --no-cache
echo "==> pytest"
exec .venv/bin/python -m pytest -q "$@"
