"""The CLI with a custom kind: apply a ResourceDefinition and Backups from one file, then get (printer
columns), describe, explain, watch and delete them by kind, plural, short name or ``kind.group``."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.support.backup import DEFINITION, NAME, as_yaml, backup
from tests.support.cluster import RunningApi, cli

PERSYS = str(Path(sys.executable).parent / "persys")


def apply_backups(api: RunningApi, tmp_path: Path) -> None:
    path = tmp_path / "backup.yaml"
    path.write_text(as_yaml(DEFINITION, backup("nightly", labels={"tier": "gold"}, retention={"days": 30}),
                            backup("weekly", schedule="@weekly")))
    code, out, err = cli(api.home, "apply", "-f", str(path))
    assert code == 0, err
    assert out.splitlines() == [f"resourcedefinition/{NAME} created", "backup/nightly created",
                                "backup/weekly created"]


def test_apply_get_describe_and_delete_by_any_name(api: RunningApi, tmp_path: Path) -> None:
    apply_backups(api, tmp_path)
    code, out, _ = cli(api.home, "get", "rd")
    assert code == 0 and out.split()[:10] == ["NAME", "KIND", "VERSIONS", "SCOPE", "AGE",
                                              NAME, "Backup", "v1*", "Namespaced", out.split()[9]]
    code, out, _ = cli(api.home, "get", "backups")
    rows = [line.split() for line in out.splitlines()]
    assert rows[0] == ["NAME", "SOURCE", "DAYS", "PHASE", "AGE"]
    assert [row[:4] for row in rows[1:]] == [["nightly", "web", "30", "<none>"], ["weekly", "web", "7", "<none>"]]
    for name in ("backup", "bk", "Backup", "backups.backup.example.com", "backup.backup.example.com"):
        code, out, err = cli(api.home, "get", name, "-l", "tier=gold", "-o", "name")
        assert (code, out.strip()) == (0, "backup/nightly"), (name, err)
    shown = yaml.safe_load(cli(api.home, "get", "bk/nightly", "-o", "yaml")[1])
    assert shown["apiVersion"] == "backup.example.com/v1" and shown["spec"]["schedule"] == "@daily"
    code, out, _ = cli(api.home, "describe", "backup", "weekly")
    assert code == 0 and "Kind:             Backup" in out and "schedule: '@weekly'" in out
    assert cli(api.home, "delete", "bk", "weekly")[1].strip() == "backup/weekly deleted"
    assert cli(api.home, "get", "bk", "-o", "name")[1].split() == ["backup/nightly"]


def test_invalid_objects_name_the_field_and_unknown_kinds_stay_unknown(api: RunningApi, tmp_path: Path) -> None:
    apply_backups(api, tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text(as_yaml(backup("bad", retention={"days": -1})))
    code, _, err = cli(api.home, "apply", "-f", str(bad))
    assert code == 1 and "  spec.retention.days: -1 is less than the minimum of 0" in err
    code, _, err = cli(api.home, "get", "gadgets")
    assert code == 1 and "unknown kind 'gadgets'" in err and "backups" in err


def test_explain_prints_the_schema_with_descriptions(api: RunningApi, tmp_path: Path) -> None:
    apply_backups(api, tmp_path)
    code, out, _ = cli(api.home, "explain", "backup")
    assert code == 0 and out.splitlines()[:3] == ["KIND:     Backup", "GROUP:    backup.example.com",
                                                  "VERSION:  v1"]
    assert "A backup of a workload's data." in out and "  spec\t<object> -required-" in out
    code, out, _ = cli(api.home, "explain", "bk.spec")
    assert "  source\t<string> -required-" in out and "    The workload whose data is backed up." in out
    assert "  tags\t<[]string>" in out and '    Default: "@daily"' in out
    code, out, _ = cli(api.home, "explain", "backups.backup.example.com.spec.retention.days")
    assert "FIELD:    days <integer>" in out and "    Days to keep each backup." in out
    code, _, err = cli(api.home, "explain", "backup.spec.nope")
    assert code == 1 and "field 'nope' does not exist in Backup.spec" in err
    code, out, _ = cli(api.home, "explain", "workload.spec.restartPolicy")
    assert code == 0 and "FIELD:    restartPolicy <string>" in out and '"OnFailure"' in out


def test_get_watch_follows_a_custom_kind(api: RunningApi, tmp_path: Path) -> None:
    apply_backups(api, tmp_path)
    watcher = subprocess.Popen([PERSYS, "--home", str(api.home), "get", "bk", "-w"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert watcher.stdout is not None
        assert watcher.stdout.readline().split()[0] == "NAME"
        assert watcher.stdout.readline().split()[:3] == ["nightly", "web", "30"]
        assert watcher.stdout.readline().split()[:3] == ["weekly", "web", "7"]
        time.sleep(0.5)  # let the watch start before the change it must report
        changed = tmp_path / "changed.yaml"
        changed.write_text(as_yaml(backup("weekly", schedule="@weekly", retention={"days": 2})))
        assert cli(api.home, "apply", "-f", str(changed))[1].strip() == "backup/weekly configured"
        assert watcher.stdout.readline().split()[:3] == ["weekly", "web", "2"]
    finally:
        watcher.terminate()
        watcher.wait(10)
        for stream in (watcher.stdout, watcher.stderr):
            if stream is not None:
                stream.close()
