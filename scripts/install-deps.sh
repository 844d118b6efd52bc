#!/usr/bin/env bash
# Installs what crisp needs on Debian 12: system packages from apt and node modules from npm.
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# Runtime dependencies of the daemon (later issues add to this list); python3 runs
# crisp's helpers in bin/: id-mapped mounts for user-namespaced pods, the attach-socket relay for
# exec/attach and the in-namespace connector for port-forward.
APT_PACKAGES=(runc conmon containernetworking-plugins iptables catatonit attr zstd python3)
# What only the tests need: a registry server, htpasswd for its basic auth, busybox for test images,
# openssl for a throwaway TLS certificate.
TEST_APT_PACKAGES=(docker-registry apache2-utils busybox-static openssl)
[ "${1:-}" = "--with-test" ] && APT_PACKAGES+=("${TEST_APT_PACKAGES[@]}")

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "crisp needs Node.js 20 or newer (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages ${missing[*]}: run as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

stamp=node_modules/.crisp-deps-stamp
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  touch "$stamp"
fi
