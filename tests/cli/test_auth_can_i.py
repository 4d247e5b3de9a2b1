"""``persys auth can-i`` against a real API: yes or no, the binding that decided, exit code 0 or 1;
and the RoleBinding kinds through ``persys apply`` and ``persys get``."""

from __future__ import annotations

import time
from pathlib import Path

from persys.security.paths import HomePaths
from tests.support.cluster import RunningApi, cli

BINDINGS = """\
apiVersion: persys.dev/v1
kind: RoleBinding
metadata: {name: ops-edit, namespace: a}
spec:
  role: edit
  subjects:
    - {kind: github-team, name: acme/ops}
    - {kind: github-user, name: octocat}
---
apiVersion: persys.dev/v1
kind: ClusterRoleBinding
metadata: {name: auditors}
spec:
  role: view
  subjects: [{kind: github-org, name: acme}]
"""
EVENTUALLY = 15.0  # seconds the bindings may take to reach the server's cache (a bound, never asserted)


def can_i(api: RunningApi, *args: str) -> tuple[int, list[str]]:
    code, out, err = cli(api.home, "auth", "can-i", *args)
    assert code in (0, 1), out + err
    return code, out.splitlines()


def test_can_i_answers_with_the_binding_that_decided(api: RunningApi, tmp_path: Path) -> None:
    manifest = tmp_path / "bindings.yaml"
    manifest.write_text(BINDINGS)
    code, out, err = cli(api.home, "apply", "-f", str(manifest))
    assert code == 0, out + err
    code, out, _ = cli(api.home, "get", "rolebindings", "-n", "a")
    assert code == 0 and "ops-edit" in out and "github-team:acme/ops" in out
    code, out, _ = cli(api.home, "get", "crb")
    assert code == 0 and "auditors" in out and "view" in out

    octocat = ("--as", "github:octocat", "--as-group", "github-org:acme")
    deadline = time.monotonic() + EVENTUALLY
    while can_i(api, "create", "workloads", "-n", "a", *octocat)[0] != 0:
        assert time.monotonic() < deadline, "the binding never took effect"
        time.sleep(0.05)
    assert can_i(api, "create", "workloads", "-n", "a", *octocat) == (
        0, ["yes", "RoleBinding a/ops-edit gives role edit"])
    code, lines = can_i(api, "delete", "workloads", "-n", "b", *octocat)
    assert code == 1 and lines[0] == "no"
    assert "may not delete workloads in namespace 'b'" in lines[1]
    assert "ClusterRoleBinding auditors gives only role view" in lines[1]
    assert can_i(api, "list", "wl", "-A", *octocat) == (0, ["yes", "ClusterRoleBinding auditors gives role view"])
    code, lines = can_i(api, "get", "secrets", "-n", "b", *octocat)
    assert code == 1 and lines[0] == "no"
    code, lines = can_i(api, "create", "rolebindings", "-n", "a", *octocat)
    assert code == 1 and "gives only role edit" in lines[1]
    code, lines = can_i(api, "get", "nodes", "--as", "github:mona")
    assert code == 1 and "user 'github:mona' may not get nodes (cluster-scoped): no ClusterRoleBinding" in lines[1]


def test_can_i_for_the_callers_own_certificate(api: RunningApi, pki_home: HomePaths) -> None:
    assert can_i(api, "delete", "nodes") == (0, ["yes", "role persys:admins allows it"])
    config = api.home / "agent.yaml"
    config.write_text((api.home / "config.yaml").read_text().replace("admin.crt", "node-n1.crt")
                      .replace("admin.key", "node-n1.key"))
    code, out, err = cli(api.home, "auth", "can-i", "delete", "workloads", "--config", str(config))
    assert code == 1 and out.splitlines()[0] == "no", out + err
    code, out, err = cli(api.home, "auth", "can-i", "get", "workloads", "--as", "github:x", "--config", str(config))
    assert code == 1 and "only admins" in err


def test_can_i_refuses_a_bad_question(api: RunningApi) -> None:
    code, _, err = cli(api.home, "auth", "can-i", "get", "gizmos")
    assert code == 1 and "spec.kind" in err
    code, _, err = cli(api.home, "auth", "can-i", "steal", "workloads")
    assert code == 2 and "steal" in err
