#!/usr/bin/env bash
# Start dockerd (no bridge, no iptables: containers use the host network) when no daemon answers.
set -euo pipefail
if docker info >/dev/null 2>&1; then exit 0; fi
if ! command -v dockerd >/dev/null; then
  echo "dockerd is not installed: apt-get install docker.io (or run make setup)" >&2; exit 1
fi
log=/var/log/persys-dockerd.log
echo "starting dockerd --bridge=none --iptables=false (log: $log)"
nohup dockerd --bridge=none --iptables=false >"$log" 2>&1 </dev/null &
for _ in $(seq 1 60); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 0.5
done
echo "dockerd did not answer within 30 s; see $log" >&2
tail -20 "$log" >&2
exit 1
