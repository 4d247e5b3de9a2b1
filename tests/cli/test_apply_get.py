"""The CLI against a real API and etcd: apply, get, describe, delete, and error output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from persys.cli.main import main
from tests.support.cluster import RunningApi, cli

WEB = """\
apiVersion: persys.dev/v1
kind: Workload
metadata: {name: web, labels: {app: web}}
spec:
  image: persys/busybox:local
  command: [httpd, -f, -p, "18080"]
  ports: [{name: http, containerPort: 18080, hostPort: 18080}]
  resources: {cpu: 250m, memory: 64Mi}
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def stored_names(api: RunningApi) -> list[str]:
    code, out, _ = cli(api.home, "get", "workloads", "-o", "name")
    assert code == 0
    return out.split()


def test_apply_get_round_trip_and_reapply(api: RunningApi, tmp_path: Path) -> None:
    path = write(tmp_path, "web.yaml", WEB)
    code, out, err = cli(api.home, "apply", "-f", path)
    assert (code, out.strip()) == (0, "workload/web created"), err
    code, out, _ = cli(api.home, "get", "workloads")
    assert code == 0
    header, row = out.strip().splitlines()
    assert header.split() == ["NAME", "PHASE", "DESIRED", "NODE", "RESTARTS", "AGE"]
    assert row.split()[:5] == ["web", "Pending", "Running", "<none>", "0"]
    code, out, _ = cli(api.home, "get", "wl", "web", "-o", "yaml")
    got = yaml.safe_load(out)
    assert got["spec"]["command"] == ["httpd", "-f", "-p", "18080"] and got["metadata"]["generation"] == 1
    assert cli(api.home, "apply", "-f", path)[1].strip() == "workload/web unchanged"
    assert json.loads(cli(api.home, "get", "workload", "web", "-o", "json")[1])["metadata"]["generation"] == 1
    write(tmp_path, "web.yaml", WEB.replace("64Mi", "128Mi"))
    assert cli(api.home, "apply", "-f", path)[1].strip() == "workload/web configured"
    assert json.loads(cli(api.home, "get", "workload", "web", "-o", "json")[1])["metadata"]["generation"] == 2
    code, out, _ = cli(api.home, "get", "workload/web", "-o", "wide")
    assert "persys/busybox:local" in out


@pytest.mark.parametrize(("old", "new", "field"), [
    ("  image: persys/busybox:local\n", "", "spec.image"),
    ("containerPort: 18080", "containerPort: 99999", "spec.ports[0].containerPort"),
    ("  command:", "  imagePullPolicy: Always\n  command:", "spec.imagePullPolicy"),
    ("memory: 64Mi", "memory: 64Zz", "spec.resources.memory"),
    ("name: web,", "name: Web_1,", "metadata.name"),
])
def test_invalid_manifests_fail_naming_the_field(api: RunningApi, tmp_path: Path, old: str, new: str,
                                                 field: str) -> None:
    assert old in WEB
    code, out, err = cli(api.home, "apply", "-f", write(tmp_path, "bad.yaml", WEB.replace(old, new)))
    assert code != 0 and "Invalid" in err
    assert f"  {field}: " in err
    assert stored_names(api) == []


def test_not_yaml_and_partial_failures(api: RunningApi, tmp_path: Path) -> None:
    code, _, err = cli(api.home, "apply", "-f", write(tmp_path, "broken.yaml", "kind: Workload\nspec: [oops\n"))
    assert code != 0 and "not valid YAML" in err and "line" in err
    assert stored_names(api) == []
    bad = WEB.replace("name: web,", "name: bad,").replace("  image: persys/busybox:local\n", "")
    good = WEB.replace("name: web,", "name: good,")
    code, out, err = cli(api.home, "apply", "-f", write(tmp_path, "mixed.yaml", f"{bad}---\n{good}"))
    assert code == 1 and out.strip() == "workload/good created"
    assert "workload/bad" in err and "spec.image" in err
    code, _, err = cli(api.home, "apply", "-f", write(tmp_path, "gadget.yaml", "kind: Gadget\nmetadata: {name: g}\n"))
    assert code == 1 and "unknown kind 'Gadget'" in err
    assert stored_names(api) == ["workload/good"]


def test_apply_dir_stdin_and_dry_run(api: RunningApi, tmp_path: Path) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    write(folder, "a.yaml", WEB.replace("name: web,", "name: a,"))
    write(folder, "b.yml", WEB.replace("name: web,", "name: b,"))
    code, out, _ = cli(api.home, "apply", "-f", str(folder), "--dry-run")
    assert code == 0 and out.split("\n")[0] == "workload/a created (dry run)"
    assert stored_names(api) == []
    assert cli(api.home, "apply", "-f", str(folder))[1].split() == ["workload/a", "created", "workload/b", "created"]
    code, out, _ = cli(api.home, "apply", "-f", "-", input=WEB)
    assert (code, out.strip()) == (0, "workload/web created")
    assert stored_names(api) == ["workload/a", "workload/b", "workload/web"]


def test_selectors_namespaces_and_aliases(api: RunningApi, tmp_path: Path) -> None:
    other = WEB.replace("name: web, labels: {app: web}", "name: db, namespace: team, labels: {app: db}")
    cli(api.home, "apply", "-f", write(tmp_path, "all.yaml", f"{WEB}---\n{other}"))
    assert cli(api.home, "get", "wl", "-o", "name")[1].split() == ["workload/web"]
    assert cli(api.home, "get", "workloads", "-n", "team", "-o", "name")[1].split() == ["workload/db"]
    code, out, _ = cli(api.home, "get", "workload", "-A")
    assert out.splitlines()[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert sorted(line.split()[1] for line in out.splitlines()[1:]) == ["db", "web"]
    assert cli(api.home, "get", "wl", "-A", "-l", "app=db", "-o", "name")[1].split() == ["workload/db"]
    code, _, err = cli(api.home, "get", "wl", "nope")
    assert code == 1 and "NotFound" in err and "nope" in err
    code, _, err = cli(api.home, "get", "gadgets")
    assert code == 1 and "unknown kind" in err


def test_secrets_are_masked_unless_asked(api: RunningApi, tmp_path: Path) -> None:
    secret = "apiVersion: persys.dev/v1\nkind: Secret\nmetadata: {name: git-token}\ndata: {token: s3cret}\n"
    assert cli(api.home, "apply", "-f", write(tmp_path, "s.yaml", secret))[1].strip() == "secret/git-token created"
    code, out, _ = cli(api.home, "get", "secrets")
    assert "git-token" in out and "s3cret" not in out
    assert "s3cret" not in cli(api.home, "get", "secret", "git-token", "-o", "yaml")[1]
    shown = yaml.safe_load(cli(api.home, "get", "secret", "git-token", "-o", "yaml", "--show-secrets")[1])
    assert shown["data"] == {"token": "s3cret"}
    assert "s3cret" not in cli(api.home, "describe", "secret", "git-token")[1]


def test_describe_and_delete(api: RunningApi, tmp_path: Path) -> None:
    path = write(tmp_path, "web.yaml", WEB)
    cli(api.home, "apply", "-f", path)
    event = ("kind: Event\nmetadata: {name: web-scheduled}\nspec: {involvedObject: {kind: Workload, name: web}, "
             "reason: Scheduled, message: bound to n1, lastTimestamp: '2026-01-01T00:00:00.000000Z'}\n")
    cli(api.home, "apply", "-f", write(tmp_path, "ev.yaml", event))
    code, out, _ = cli(api.home, "describe", "wl", "web")
    assert code == 0
    assert "Name:             web" in out and "image: persys/busybox:local" in out
    assert "Scheduled" in out and "bound to n1" in out
    code, out, _ = cli(api.home, "delete", "workload", "web")
    assert (code, out.strip()) == (0, "workload/web deleted")
    code, _, err = cli(api.home, "delete", "workload", "web")
    assert code == 1 and "NotFound" in err
    cli(api.home, "apply", "-f", path)
    assert cli(api.home, "delete", "-f", path)[1].strip() == "workload/web deleted"
    assert stored_names(api) == []


def test_flags_win_over_environment_and_config(api: RunningApi, tmp_path: Path) -> None:
    dead = "https://127.0.0.1:9"  # nothing listens there
    code, _, err = cli(api.home, "get", "wl", env={"PERSYS_SERVER": dead})
    assert code == 1 and "cannot reach" in err
    code, _, err = cli(api.home, "get", "wl", "--server", api.secure_url, env={"PERSYS_SERVER": dead})
    assert code == 0, err
    config = yaml.safe_load((api.home / "config.yaml").read_text())
    moved = tmp_path / "elsewhere.yaml"
    moved.write_text(yaml.safe_dump(config))
    (api.home / "config.yaml").write_text(yaml.safe_dump({**config, "server": dead}))
    assert cli(api.home, "get", "wl", "--config", str(moved))[0] == 0
    assert cli(api.home, "get", "wl", env={"PERSYS_CONFIG": str(moved)})[0] == 0
    assert cli(tmp_path / "empty-home", "get", "wl")[0] == 1


def test_home_after_the_command_wins(api: RunningApi, tmp_path: Path) -> None:
    runner = CliRunner()
    done = runner.invoke(main, ["--home", str(tmp_path / "empty"), "get", "wl", "--home", str(api.home)])
    assert done.exit_code == 0, done.output
    done = runner.invoke(main, ["pki", "init", "--home", str(tmp_path / "fresh")], env={"PERSYS_HOME": "/nonexistent"})
    assert done.exit_code == 0 and (tmp_path / "fresh" / "config.yaml").exists()
