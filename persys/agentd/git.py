"""Fetching compose repositories with git, without ever exposing the access token.

The token reaches git only as ``persys.security.git`` passes it (never in arguments, config, logs
or errors). Only ``https://`` URLs,
``file://`` URLs and local paths are accepted; anything starting with ``-`` (an option
injection) or using another scheme (``ssh``, ``ext::``, scp-like ``host:path``) is refused.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from persys.errors import BadRequest, RuntimeFailure
from persys.security.git import GIT_TIMEOUT, Git

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_COMMIT = re.compile(r"[0-9a-f]{40}")


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


class GitFetcher:
    """Clones repositories at a ref; ``askpass_dir`` holds the (secret-free) askpass script."""

    def __init__(self, askpass_dir: Path, timeout: float = GIT_TIMEOUT) -> None:
        self.git = Git(askpass_dir, timeout)

    async def clone(self, repo: str, ref: str, dest: Path, *, revision: str = "", username: str = "",
                    token: str = "") -> str:
        """A fresh checkout of ``repo`` at ``revision`` (a commit id), else at ``ref`` (branch, tag or
        commit; the default branch if empty); the commit checked out."""
        repo, ref = validate_repo(repo), validate_ref(ref)
        if revision and not _COMMIT.fullmatch(revision):
            raise BadRequest(f"spec.compose.revision {revision!r} is not a full commit id")
        _empty(dest)
        env = self.git.env(username, token)
        await self.git.run(["clone", "--quiet", "--no-recurse-submodules", "--", repo, str(dest)], env, None, token)
        if revision:
            await self._fetch_commit(revision, env, dest, token)
            await self.git.run(["checkout", "--quiet", "--detach", revision], env, dest, token)
        elif ref:
            commit = await self._resolve(ref, env, dest, token)
            await self.git.run(["checkout", "--quiet", "--detach", commit], env, dest, token)
        return await self.git.run(["rev-parse", "HEAD"], env, dest, token)

    async def _fetch_commit(self, revision: str, env: dict[str, str], dest: Path, token: str) -> None:
        """Make sure the clone has ``revision`` (a commit no branch reaches yet is fetched by its id)."""
        present = ["cat-file", "-e", f"{revision}^{{commit}}"]
        try:
            await self.git.run(present, env, dest, token)
            return
        except RuntimeFailure:
            pass
        try:
            await self.git.run(["fetch", "--quiet", "origin", revision], env, dest, token)
            await self.git.run(present, env, dest, token)
        except RuntimeFailure:
            raise RuntimeFailure(f"revision {revision} is not in the repository (spec.compose.revision)") from None

    async def _resolve(self, ref: str, env: dict[str, str], dest: Path, token: str) -> str:
        """The commit of a remote branch, a tag or a commit id, in that order."""
        for candidate in (f"refs/remotes/origin/{ref}", ref):
            try:
                return await self.git.run(["rev-parse", "--verify", "--quiet", "--end-of-options",
                                        f"{candidate}^{{commit}}"], env, dest, token)
            except RuntimeFailure:
                continue
        raise RuntimeFailure(f"git checkout failed: ref {ref!r} not found in the repository")
