#!/usr/bin/env bash
# Install inspectd as a systemd service on a line PC (run as root from a checkout):
#   sudo bash deploy/install.sh
# Creates the inspectd user, /opt/inspectd with its venv, /etc/inspectd/inspectd.toml (kept if present),
# installs the models and the unit, and enables the service. Rerun to upgrade.
set -euo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEST=${INSPECTD_PREFIX:-/opt/inspectd}
[ "$(id -u)" -eq 0 ] || { echo "run as root: sudo bash deploy/install.sh" >&2; exit 1; }
id inspectd >/dev/null 2>&1 || useradd --system --home-dir /var/lib/inspectd --shell /usr/sbin/nologin \
  --groups video inspectd
mkdir -p "$DEST" /etc/inspectd
if [ "$SRC" != "$DEST" ]; then
  tar -C "$SRC" --exclude=.venv --exclude=.git --exclude=var -cf - . | tar -C "$DEST" -xf -
fi
bash "$DEST/deploy/bootstrap.sh"
[ -f /etc/inspectd/inspectd.toml ] || install -m 0640 -g inspectd "$DEST/deploy/inspectd.toml" /etc/inspectd/inspectd.toml
"$DEST/.venv/bin/inspectd" check-config /etc/inspectd/inspectd.toml >/dev/null
export INSPECTD_MODELS__DIR=/var/lib/inspectd/models
mkdir -p "$INSPECTD_MODELS__DIR"
"$DEST/.venv/bin/inspectd" models install-isnet
"$DEST/.venv/bin/inspectd" models pull --only clipseg sam || {
  echo "!! could not download CLIPSeg/SAM: copy a models folder from a machine with internet into" \
       "$INSPECTD_MODELS__DIR (see README 'Models'), then: systemctl restart inspectd" >&2; }
chown -R inspectd:inspectd /var/lib/inspectd
install -m 0644 "$DEST/systemd/inspectd.service" /etc/systemd/system/inspectd.service
systemctl daemon-reload
systemctl enable --now inspectd
echo "installed. Watch: journalctl -u inspectd -f ; mosquitto_sub -t 'inspectd/#' -v"
