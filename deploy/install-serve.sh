#!/usr/bin/env bash
# Install `inspectd serve` (Triton with inspectd's networks) as a systemd service on a GPU box (root, from a checkout):
#   sudo bash deploy/install-serve.sh
# Creates the inspectd user, /opt/inspectd/.venv-serve, /etc/inspectd/serve.toml (kept if present), the models
# and the unit inspectd-serve.service. Rerun to upgrade.
set -euo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEST=${INSPECTD_PREFIX:-/opt/inspectd}
[ "$(id -u)" -eq 0 ] || { echo "run as root: sudo bash deploy/install-serve.sh" >&2; exit 1; }
id inspectd >/dev/null 2>&1 || useradd --system --home-dir /var/lib/inspectd --shell /usr/sbin/nologin inspectd
mkdir -p "$DEST" /etc/inspectd
if [ "$SRC" != "$DEST" ]; then
  tar -C "$SRC" --exclude=.venv --exclude=.venv-serve --exclude=.git --exclude=var -cf - . | tar -C "$DEST" -xf -
fi
bash "$DEST/deploy/bootstrap.sh" serve
[ -f /etc/inspectd/serve.toml ] || install -m 0640 -g inspectd "$DEST/deploy/serve.toml" /etc/inspectd/serve.toml
"$DEST/.venv-serve/bin/inspectd" check-config /etc/inspectd/serve.toml >/dev/null
export INSPECTD_MODELS__DIR=/var/lib/inspectd/models
mkdir -p "$INSPECTD_MODELS__DIR"
"$DEST/.venv-serve/bin/inspectd" models install-isnet
"$DEST/.venv-serve/bin/inspectd" models pull --only clipseg sam || {
  echo "!! could not download CLIPSeg/SAM: copy a models folder into $INSPECTD_MODELS__DIR (README 'Models')" >&2; }
chown -R inspectd:inspectd /var/lib/inspectd
install -m 0644 "$DEST/systemd/inspectd-serve.service" /etc/systemd/system/inspectd-serve.service
systemctl daemon-reload
systemctl enable --now inspectd-serve
echo "installed. Watch: journalctl -u inspectd-serve -f ; curl -s localhost:8000/v2/models/inspectd_info/ready -w '%{http_code}\n'"
