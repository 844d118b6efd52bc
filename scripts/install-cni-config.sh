#!/usr/bin/env bash
# Installs crisp's default pod network (deploy/cni/10-crisp.conflist: bridge crisp0, host-local
# IPAM on 10.85.0.0/16, portmap, bandwidth) into the CNI config directory crisp uses, but only
# when that directory holds no network configuration yet: an operator's own config always wins.
set -euo pipefail
cd "$(dirname "$0")/.."
conf_dir=$(./bin/crisp config 2>/dev/null | sed -n 's/^cni_conf_dir = "\(.*\)"$/\1/p' | head -n 1)
conf_dir=${conf_dir:-/etc/cni/net.d}
shopt -s nullglob
existing=("$conf_dir"/*.conflist "$conf_dir"/*.conf "$conf_dir"/*.json)
if [ ${#existing[@]} -eq 0 ]; then
  install -d -m 0755 "$conf_dir"
  install -m 0644 deploy/cni/10-crisp.conflist "$conf_dir/10-crisp.conflist"
  echo "installed the default pod network: $conf_dir/10-crisp.conflist"
fi
