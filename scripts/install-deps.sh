#!/usr/bin/env bash
# Installs the Debian packages the tests need (real Redis and etcd servers,
# started by the tests themselves on free loopback ports; iproute2's ip for
# the network namespaces the partition tests put nodes in; promtool, from
# the prometheus package, for the alert rules' tests; chromium, the
# headless browser the status page's test loads it in; curl, which
# scripts/deployment-check.sh uses). Idempotent:
# does nothing when they are already installed.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v curl >/dev/null 2>&1 || missing+=(curl)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing ${missing[*]}; run 'make test' as root or install them with apt-get" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d keeps the packages from starting system-wide services: tests
# start their own servers on free ports.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod +x "$policy"
  created_policy=1
fi
trap '[ "$created_policy" -eq 1 ] && rm -f "$policy"' EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
command -v redis-server >/dev/null && command -v etcd >/dev/null && command -v ip >/dev/null && command -v promtool >/dev/null && command -v chromium >/dev/null && command -v curl >/dev/null
