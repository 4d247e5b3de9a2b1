"""Fetching compose repositories with git, without ever exposing the access token.

The token reaches git only through the environment of the git process, read back by a
``GIT_ASKPASS`` script that holds no secret itself; it never appears in arguments (visible in
``ps``), in the checkout's config, or in logs and error messages. Only ``https://`` URLs,
``file://`` URLs and local paths are accepted; anything starting with ``-`` (an option
injection) or using another scheme (``ssh``, ``ext::``, scp-like ``host:path``) is refused.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

from persys.errors import BadRequest, RuntimeFailure

GIT_TIMEOUT = 120.0
DEFAULT_USERNAME = "x-access-token"
ASKPASS_SCRIPT = """#!/bin/sh
case "$1" in
  Username*) printf '%s\\n' "$PERSYS_GIT_USERNAME" ;;
  *) printf '%s\\n' "$PERSYS_GIT_TOKEN" ;;
esac
"""
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


def validate_repo(repo: str) -> str:
    """``repo`` if it is an https URL, a file URL or an existing local directory; BadRequest otherwise."""
    repo = repo.strip()
    if not repo:
        raise BadRequest("spec.compose.repo is empty")
    if repo.startswith("-"):
        raise BadRequest(f"spec.compose.repo {repo!r} must not start with '-'")
    scheme = _SCHEME.match(repo)
    if scheme:
        if scheme.group(1).lower() not in ("https", "file"):
            raise BadRequest(f"spec.compose.repo scheme {scheme.group(1)!r} is not allowed: use https://, file:// "
                             "or a local path")
        return repo
    if "::" in repo or re.match(r"^[^/]*:", repo):
        raise BadRequest(f"spec.compose.repo {repo!r} is not allowed: use https://, file:// or a local path")
    if not Path(repo).is_dir():
        raise BadRequest(f"spec.compose.repo {repo!r} is not an existing local directory")
    return repo


def validate_ref(ref: str) -> str:
    if ref.startswith("-") or any(c.isspace() for c in ref):
        raise BadRequest(f"spec.compose.ref {ref!r} is not a valid git ref")
    return ref


def _empty(dest: Path) -> None:
    shutil.rmtree(dest, ignore_errors=True)
    dest.parent.mkdir(parents=True, exist_ok=True)


def _redact(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


class GitFetcher:
    """Clones repositories at a ref; ``askpass_dir`` holds the (secret-free) askpass script."""

    def __init__(self, askpass_dir: Path, timeout: float = GIT_TIMEOUT) -> None:
        self.askpass = askpass_dir / "git-askpass.sh"
        self.timeout = timeout

    def _askpass(self) -> Path:
        if not self.askpass.exists():
            self.askpass.parent.mkdir(parents=True, exist_ok=True)
            self.askpass.write_text(ASKPASS_SCRIPT)
            self.askpass.chmod(0o700)
        return self.askpass

    def _env(self, username: str, token: str) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG", "TMPDIR")}
        env.update({"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": str(self._askpass()),
                    "PERSYS_GIT_USERNAME": username or DEFAULT_USERNAME, "PERSYS_GIT_TOKEN": token,
                    "GIT_CONFIG_NOSYSTEM": "1"})
        return env

    async def _git(self, args: list[str], env: dict[str, str], cwd: Path | None, token: str) -> str:
        process = await asyncio.create_subprocess_exec(
            "git", *args, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), self.timeout)
        except TimeoutError as e:
            process.kill()
            await process.wait()
            raise RuntimeFailure(f"git {args[0]} timed out after {self.timeout:g}s") from e
        if process.returncode != 0:
            detail = _redact(stderr.decode(errors="replace").strip(), token).splitlines()
            raise RuntimeFailure(f"git {args[0]} failed: {' '.join(detail[-3:]) or f'exit {process.returncode}'}")
        return stdout.decode(errors="replace").strip()

    async def clone(self, repo: str, ref: str, dest: Path, *, username: str = "", token: str = "") -> None:
        """A fresh checkout of ``repo`` at ``ref`` (branch, tag or commit; default branch if empty)."""
        repo, ref = validate_repo(repo), validate_ref(ref)
        _empty(dest)
        env = self._env(username, token)
        await self._git(["clone", "--quiet", "--no-recurse-submodules", "--", repo, str(dest)], env, None, token)
        if ref:
            commit = await self._resolve(ref, env, dest, token)
            await self._git(["checkout", "--quiet", "--detach", commit], env, dest, token)

    async def _resolve(self, ref: str, env: dict[str, str], dest: Path, token: str) -> str:
        """The commit of a remote branch, a tag or a commit id, in that order."""
        for candidate in (f"refs/remotes/origin/{ref}", ref):
            try:
                return await self._git(["rev-parse", "--verify", "--quiet", "--end-of-options",
                                        f"{candidate}^{{commit}}"], env, dest, token)
            except RuntimeFailure:
                continue
        raise RuntimeFailure(f"git checkout failed: ref {ref!r} not found in the repository")
