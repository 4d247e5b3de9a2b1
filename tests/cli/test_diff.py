"""``persys diff`` against a real API and etcd: its diffs, its exit codes, masked Secrets, and
``persys apply --if-resource-version`` refusing to write over a change made since the diff."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.cluster import RunningApi, cli

WEB = """\
apiVersion: persys.dev/v1
kind: Workload
metadata: {name: web}
spec:
  image: persys/busybox:local
  command: [httpd, -f, -p, "18080"]
"""
SECRET = """\
apiVersion: persys.dev/v1
kind: Secret
metadata: {name: token}
data: {token: %s, user: octocat}
"""


def write(tmp_path: Path, text: str, name: str = "web.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def version_in(err: str) -> str:
    found = re.search(r"--if-resource-version (\d+)", err)
    assert found, err
    return found.group(1)


def test_exit_codes_of_diff(api: RunningApi, tmp_path: Path) -> None:
    path = write(tmp_path, WEB)
    code, out, err = cli(api.home, "diff", "-f", path)
    assert code == 1, err
    assert "--- live/workloads/default/web\n+++ merged/workloads/default/web\n" in out
    assert "+  image: persys/busybox:local\n" in out and "+  restartPolicy: Always\n" in out  # defaults shown
    assert "resourceVersion" not in out and "status" not in out
    assert cli(api.home, "get", "workload", "web")[0] == 1, "a diff stores nothing"

    assert cli(api.home, "apply", "-f", path)[0] == 0
    assert cli(api.home, "diff", "-f", path) == (0, "", "")

    changed = write(tmp_path, WEB.replace('"18080"', '"18081"'), "web2.yaml")
    code, out, err = cli(api.home, "diff", "-f", changed)
    assert code == 1
    assert '-  - "18080"\n' in out.replace("'", '"') and '+  - "18081"\n' in out.replace("'", '"')
    assert "+  generation" not in out
    assert "1 object(s) would change" in err

    probe = "  livenessProbe: {httpGet: {port: 70000}, exec: {command: ['true']}}\n"
    invalid = write(tmp_path, WEB + probe, "bad.yaml")
    code, out, err = cli(api.home, "diff", "-f", invalid)
    assert code == 2 and out == ""
    assert "spec.livenessProbe: needs exactly one handler" in err

    code, _, err = cli(api.home, "diff", "-f", str(tmp_path / "absent.yaml"))
    assert code == 2 and "no such file" in err


def test_secret_values_are_masked(api: RunningApi, tmp_path: Path) -> None:
    assert cli(api.home, "apply", "-f", write(tmp_path, SECRET % "s3cret-one", "s.yaml"))[0] == 0
    assert cli(api.home, "diff", "-f", write(tmp_path, SECRET % "s3cret-one", "s.yaml"))[0] == 0
    code, out, _ = cli(api.home, "diff", "-f", write(tmp_path, SECRET % "s3cret-two", "s.yaml"))
    assert code == 1
    assert "s3cret" not in out and "octocat" not in out
    assert "-  token: '******** (before)'" in out and "+  token: '******** (after)'" in out
    assert "user: '********'" in out or "user" not in out  # unchanged values stay masked (and unchanged)


def test_apply_if_resource_version_refuses_a_change_made_since_the_diff(api: RunningApi, tmp_path: Path) -> None:
    assert cli(api.home, "apply", "-f", write(tmp_path, WEB))[0] == 0
    mine = write(tmp_path, WEB.replace('"18080"', '"18081"'), "mine.yaml")
    code, _, err = cli(api.home, "diff", "-f", mine)
    assert code == 1
    seen = version_in(err)

    theirs = write(tmp_path, WEB.replace('"18080"', '"18082"'), "theirs.yaml")
    assert cli(api.home, "apply", "-f", theirs)[0] == 0  # someone else's change lands after my diff
    code, out, err = cli(api.home, "apply", "-f", mine, "--if-resource-version", seen)
    assert code == 1 and out == ""
    assert f"changed since resourceVersion {seen}" in err and "nothing was applied" in err
    code, out, _ = cli(api.home, "get", "workload", "web", "-o", "yaml")
    assert '"18082"' in out or "'18082'" in out, "their change stays"

    code, _, err = cli(api.home, "diff", "-f", mine)
    code, out, err = cli(api.home, "apply", "-f", mine, "--if-resource-version", version_in(err))
    assert (code, out.strip()) == (0, "workload/web configured"), err


def test_apply_if_resource_version_refuses_an_object_created_since(api: RunningApi, tmp_path: Path) -> None:
    path = write(tmp_path, WEB.replace("name: web", "name: fresh"))
    code, _, err = cli(api.home, "diff", "-f", path)
    seen = version_in(err)
    assert seen == "0", "nothing existed"
    assert cli(api.home, "apply", "-f", path)[0] == 0  # created by someone else meanwhile
    code, _, err = cli(api.home, "apply", "-f", path, "--if-resource-version", seen)
    assert code == 1 and "changed since resourceVersion 0" in err

    other = write(tmp_path, WEB.replace("name: web", "name: other"), "other.yaml")
    code, out, err = cli(api.home, "apply", "-f", other, "--if-resource-version", seen)
    assert (code, out.strip()) == (0, "workload/other created"), err
