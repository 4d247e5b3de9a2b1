"""Local git repositories for tests and benchmarks: commits, and a compose app built from its repository."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git(repo: Path, *args: str) -> str:
    """``git ARGS`` in ``repo`` as a test author; its output."""
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=repo,
                          check=True, capture_output=True, text=True, timeout=60).stdout.strip()


def new_repo(path: Path) -> Path:
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    return path


def commit(repo: Path, page: str) -> str:
    """Write ``page`` to page.txt, commit everything; the new commit id."""
    (repo / "page.txt").write_text(page)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", page)
    return git(repo, "rev-parse", "HEAD")


def compose_app_repo(path: Path, port: int) -> Path:
    """A repository whose compose app is built from it: busybox httpd serving page.txt on ``port``."""
    new_repo(path)
    (path / "Dockerfile").write_text('FROM persys/busybox:local\nCOPY page.txt /www/index.html\n'
                                     f'CMD ["httpd", "-f", "-p", "{port}", "-h", "/www"]\n')
    (path / "docker-compose.yml").write_text('version: "3.7"\nservices:\n  web:\n    build: .\n'
                                              '    network_mode: host\n    init: true\n')  # stops on SIGTERM
    return path
