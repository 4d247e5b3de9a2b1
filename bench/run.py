"""``make bench``: every benchmark in bench/, one after another, merged into bench/results.json.

Each benchmark runs as its own process (it starts and cleans up its own servers and prints its
own table) and writes ``bench/results-<name>.json``; this script bounds each in time, collects
those files into one, and exits non-zero when any benchmark failed.

Run: .venv/bin/python bench/run.py [--quick] [--only e2e,scale]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent

# name -> (script, arguments for a full run, arguments for --quick, time limit in seconds)
BENCHMARKS: dict[str, tuple[str, list[str], list[str], int]] = {
    "api": ("api.py", [], [], 600),
    "agent": ("agent.py", ["20"], ["5"], 300),
    "e2e": ("e2e.py", [], ["--quick"], 900),
    "scale": ("scale.py", ["--profile"], ["--quick"], 720),
    "listing": ("listing.py", [], ["--quick"], 600),
    "operator": ("operator.py", [], ["--quick"], 600),
    "gateway": ("gateway.py", [], ["--quick"], 300),
    "pushdeploy": ("pushdeploy.py", [], ["--quick"], 600),
    "watches": ("watches.py", [], ["--quick"], 300),
    "failover": ("failover.py", [], ["--quick"], 600),
    "join": ("join.py", [], ["--quick"], 600),
    "probes": ("probes.py", [], ["--quick"], 300),
    "dashboard": ("dashboard.py", [], ["--quick"], 900),
    "deployment": ("deployment.py", [], ["--quick"], 600),
    "chaos": ("chaos.py", [], ["--quick"], 1200),
}


def run_one(name: str, quick: bool) -> dict[str, Any]:
    """Run one benchmark (its table goes straight to our stdout); its results, or why it failed."""
    script, full, short, limit = BENCHMARKS[name]
    result_file = BENCH / f"results-{name}.json"
    before = result_file.stat().st_mtime if result_file.exists() else 0.0
    print(f"\n=== {name}: bench/{script} {' '.join(short if quick else full)}", flush=True)
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, str(BENCH / script), *(short if quick else full)],
                               cwd=BENCH.parent, start_new_session=True)
    try:
        code = process.wait(limit)
    except subprocess.TimeoutExpired:
        process.terminate()  # each benchmark cancels itself on SIGTERM and cleans up
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        return {"error": f"timed out after {limit}s"}
    seconds = round(time.monotonic() - started, 1)
    if code != 0:
        return {"error": f"exited with {code}", "seconds": seconds}
    if not result_file.exists() or result_file.stat().st_mtime <= before:
        return {"error": f"{result_file.name} was not written", "seconds": seconds}
    return {**json.loads(result_file.read_text()), "seconds": seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs of every benchmark")
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(BENCHMARKS)
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    merged: dict[str, Any] = {"quick": args.quick, "cpus": os.cpu_count(),
                              "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for name in names:
        merged[name] = run_one(name, args.quick)
    out = BENCH / "results.json"
    out.write_text(json.dumps(merged, indent=2) + "\n")
    failed = [n for n in names if "error" in merged[n]]
    failures = ", ".join(f"{n} ({merged[n]['error']})" for n in failed)
    print(f"\nwrote {out}" + (f"; failed: {failures}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
