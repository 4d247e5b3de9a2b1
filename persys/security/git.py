"""Running git with an access token that never shows: not in arguments, config, logs or errors.

The token reaches git only through the environment of the git process, read back by a
``GIT_ASKPASS`` script that holds no secret itself; it never appears in arguments (visible in
``ps``), in a checkout's config, or in logs and error messages (git's output is redacted). The
agent clones compose repositories with it, the controllers ask for the tip of a branch.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from persys.errors import RuntimeFailure

GIT_TIMEOUT = 120.0
DEFAULT_USERNAME = "x-access-token"
ASKPASS_SCRIPT = """#!/bin/sh
case "$1" in
  Username*) printf '%s\\n' "$PERSYS_GIT_USERNAME" ;;
  *) printf '%s\\n' "$PERSYS_GIT_TOKEN" ;;
esac
"""


def redact(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


class Git:
    """Runs git commands; ``askpass_dir`` holds the (secret-free) askpass script."""

    def __init__(self, askpass_dir: Path, timeout: float = GIT_TIMEOUT) -> None:
        self.askpass = askpass_dir / "git-askpass.sh"
        self.timeout = timeout

    def _askpass(self) -> Path:
        if not self.askpass.exists():
            self.askpass.parent.mkdir(parents=True, exist_ok=True)
            self.askpass.write_text(ASKPASS_SCRIPT)
            self.askpass.chmod(0o700)
        return self.askpass

    def env(self, username: str, token: str) -> dict[str, str]:
        """The environment of a git process that may need the credentials."""
        env = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG", "TMPDIR")}
        env.update({"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": str(self._askpass()),
                    "PERSYS_GIT_USERNAME": username or DEFAULT_USERNAME, "PERSYS_GIT_TOKEN": token,
                    "GIT_CONFIG_NOSYSTEM": "1"})
        return env

    async def run(self, args: list[str], env: dict[str, str], cwd: Path | None, token: str) -> str:
        """git's output; RuntimeFailure with its last error lines (redacted) when it fails or times out."""
        process = await asyncio.create_subprocess_exec(
            "git", *args, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), self.timeout)
        except TimeoutError as e:
            process.kill()
            await process.wait()
            raise RuntimeFailure(f"git {args[0]} timed out after {self.timeout:g}s") from e
        except asyncio.CancelledError:  # the caller went away: so does git
            process.kill()
            await asyncio.shield(process.wait())
            raise
        if process.returncode != 0:
            detail = redact(stderr.decode(errors="replace").strip(), token).splitlines()
            raise RuntimeFailure(f"git {args[0]} failed: {' '.join(detail[-3:]) or f'exit {process.returncode}'}")
        return stdout.decode(errors="replace").strip()

    async def tip(self, repo: str, branch: str, *, username: str = "", token: str = "") -> str:
        """The commit ``branch`` of ``repo`` points at now (``git ls-remote``); RuntimeFailure when none."""
        ref = f"refs/heads/{branch}" if branch else "HEAD"
        out = await self.run(["ls-remote", "--", repo, ref], self.env(username, token), None, token)
        for line in out.splitlines():
            commit, _, name = line.partition("\t")
            if name == ref:
                return commit
        raise RuntimeFailure(f"git ls-remote: {repo} has no {ref}")
