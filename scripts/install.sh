#!/usr/bin/env bash
# Installs a built crisp (make build) system-wide: /usr/local/lib/crisp (code, proto, production
# node modules), /usr/local/bin/crisp, /etc/crisp/crisp.toml (kept if it exists) and the systemd
# unit. Run as root from the checkout, through `make install`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "make install needs root" >&2; exit 1; }
[ -f dist/src/main.js ] || { echo "run make build first" >&2; exit 1; }

prefix=/usr/local/lib/crisp
rm -rf "$prefix.new"
mkdir -p "$prefix.new"
cp -a bin data dist proto package.json package-lock.json "$prefix.new/"
(cd "$prefix.new" && npm ci --omit=dev --no-audit --no-fund --loglevel=error)
rm -rf "$prefix.old"
[ -d "$prefix" ] && mv "$prefix" "$prefix.old"
mv "$prefix.new" "$prefix"
rm -rf "$prefix.old"
ln -sfn "$prefix/bin/crisp" /usr/local/bin/crisp

install -d -m 0755 /etc/crisp
[ -f /etc/crisp/crisp.toml ] || install -m 0644 deploy/crisp.toml /etc/crisp/crisp.toml
[ -f /etc/crictl.yaml ] || install -m 0644 deploy/crictl.yaml /etc/crictl.yaml
install -D -m 0644 deploy/crisp.service /etc/systemd/system/crisp.service
scripts/install-cni-config.sh
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  echo "installed; start it with: systemctl enable --now crisp"
else
  echo "installed as /usr/local/bin/crisp (no systemd here: run it with 'crisp')"
fi
