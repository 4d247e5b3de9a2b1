#!/usr/bin/env bash
# `make run`: start `persys up` in the background (or reuse a running one), apply manifests/
# and show the workloads converging. The cluster keeps running afterwards; the script says how
# to use and stop it.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
persys="$top/.venv/bin/persys"
export PERSYS_HOME=${PERSYS_HOME:-$HOME/.persys}
mkdir -p "$PERSYS_HOME"
"$top/scripts/example-repos.sh"

if curl -fsS http://127.0.0.1:7070/readyz >/dev/null 2>&1; then
  echo "persys up is already running; using it"
else
  echo "starting persys up (home $PERSYS_HOME, log $PERSYS_HOME/up.log)"
  nohup "$persys" up >"$PERSYS_HOME/up.log" 2>&1 </dev/null &
  echo $! >"$PERSYS_HOME/up.pid"
  for _ in $(seq 1 120); do
    curl -fsS http://127.0.0.1:7070/readyz >/dev/null 2>&1 && break
    if ! kill -0 "$(cat "$PERSYS_HOME/up.pid")" 2>/dev/null; then
      echo "persys up exited:" >&2; tail -20 "$PERSYS_HOME/up.log" >&2; exit 1
    fi
    sleep 0.5
  done
  until "$persys" get nodes 2>/dev/null | grep -q " Ready"; do sleep 0.5; done
fi

"$persys" get nodes
echo
# The crasher never converges: it is there to show back-off, so --wait reports it and we go on.
"$persys" apply -f "$top/manifests" --wait --timeout 30 || true
echo
"$persys" get workloads -o wide
cat <<TXT

Persys is running in the background (pid $(cat "$PERSYS_HOME/up.pid" 2>/dev/null || echo "?"), log $PERSYS_HOME/up.log).
  export PATH=$top/.venv/bin:\$PATH
  persys get workloads -w          # watch the workloads
  curl http://127.0.0.1:18080/     # the web workload
  persys describe workload crasher # back-off and events
  persys stats                     # reconciliation statistics
Stop it with: kill \$(cat $PERSYS_HOME/up.pid)
TXT
