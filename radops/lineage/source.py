"""Where a pipeline function's code lives: its source, and a link to the exact commit.

The link is built from the repository's ``origin`` remote, whether it is an ssh
(``git@github.com:org/repo.git``) or an https URL, in GitHub style
(``/blob/<commit>/<path>#L<line>``) or GitLab style (``/-/blob/...``) by host.
"""

from __future__ import annotations

import hashlib
import inspect
import re
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

__all__ = ["GitInfo", "SourceInfo", "source_info", "web_url", "without_credentials"]


@attrs.frozen
class GitInfo:
    """The git state of the file that holds a function."""

    repo_root: Path
    commit: str
    branch: str | None
    origin: str | None
    path: str  # relative to repo_root, POSIX
    dirty: bool  # the file differs from the commit (uncommitted changes or untracked)


@attrs.frozen
class SourceInfo:
    """A function's code: file, first line, source text and its sha256, and git state."""

    module: str
    name: str
    file: Path | None
    line: int | None
    source: str
    source_sha256: str
    git: GitInfo | None

    @property
    def job_name(self) -> str:
        """``module.function``, the OpenLineage job name."""
        return f"{self.module}.{self.name}"

    @property
    def url(self) -> str | None:
        """A link to the exact code that ran, or None outside a repo with an origin."""
        if self.git is None or self.git.origin is None:
            return None
        base = web_url(self.git.origin)
        if base is None:
            return None
        # Fix: look for "gitlab" in the host only (a GitHub repository named "gitlab-tools"
        # got GitLab-style links).
        host = base.split("/")[2]
        blob = "/-/blob/" if "gitlab" in host else "/blob/"
        anchor = f"#L{self.line}" if self.line else ""
        return f"{base}{blob}{self.git.commit}/{self.git.path}{anchor}"

    @property
    def warning(self) -> str | None:
        """Why the link may not show the code that ran, or None when it will."""
        if self.file is None:
            return f"the source file of {self.job_name} is unknown: no code link is recorded"
        if self.git is None:
            return f"{self.file} is not in a git repository: no code link is recorded"
        if self.git.dirty:
            return (
                f"{self.git.path} has uncommitted changes: the recorded code link "
                f"(commit {self.git.commit[:12]}) will not match the code that ran"
            )
        if self.git.origin is None:
            return f"the repository {self.git.repo_root} has no origin remote: no code link"
        if web_url(self.git.origin) is None:
            # A clone of a local path or a file:// remote: nothing a browser elsewhere can open.
            return (
                f"the origin remote of {self.git.repo_root} ({self.git.origin}) "
                "is not a web address: no code link"
            )
        return None


_SCP_LIKE = re.compile(r"^(?:[\w.-]+@)?(?P<host>[\w.-]+):(?P<path>(?!//).+)$")


def web_url(origin: str) -> str | None:
    """The https URL of a repository from its ``origin`` (ssh, scp-like or https)."""
    origin = origin.strip()
    match = re.match(
        r"^(?:https?|ssh|git)://(?:[^@/]+@)?(?P<host>[^/:]+)(?::\d+)?/(?P<path>.+)$", origin
    )
    if match is None:
        match = _SCP_LIKE.match(origin)
    if match is None:
        return None
    path = match.group("path").strip("/").removesuffix(".git")
    return f"https://{match.group('host')}/{path}"


def without_credentials(origin: str) -> str:
    """``origin`` without a password or token (``https://user:token@host/...``).

    Fix: the origin is recorded in every event (``repoUrl``), stored in the lake and sent to
    lineage consumers; CI checkouts often embed a token in it.
    """
    match = re.match(r"^(?P<scheme>[A-Za-z][\w+.-]*://)(?P<user>[^@/]*)@(?P<rest>.*)$", origin)
    if match is None:
        return origin
    scheme, user = match.group("scheme"), match.group("user")
    if scheme.lower().startswith("http"):
        return f"{scheme}{match.group('rest')}"
    return f"{scheme}{user.split(':', 1)[0]}@{match.group('rest')}"


def _git(cwd: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip()


def _git_info(file: Path) -> GitInfo | None:
    directory = file.parent
    root = _git(directory, "rev-parse", "--show-toplevel")
    commit = _git(directory, "rev-parse", "HEAD") if root else None
    if not root or not commit:
        return None
    repo_root = Path(root)
    path = file.resolve().relative_to(repo_root.resolve()).as_posix()
    branch = _git(directory, "rev-parse", "--abbrev-ref", "HEAD")
    origin = _git(directory, "config", "--get", "remote.origin.url")
    origin = without_credentials(origin) if origin else None
    status = _git(repo_root, "status", "--porcelain", "--", path)
    return GitInfo(
        repo_root=repo_root,
        commit=commit,
        branch=None if branch in (None, "HEAD") else branch,
        origin=origin,
        path=path,
        dirty=bool(status),
    )


def source_info(func: Callable[..., Any]) -> SourceInfo:
    """Describe ``func``'s code. Git is asked once per file and process."""
    func = inspect.unwrap(func)
    module = getattr(func, "__module__", None) or "__unknown__"
    name = str(getattr(func, "__qualname__", None) or getattr(func, "__name__", "function"))
    try:
        source = textwrap.dedent(inspect.getsource(func))
        line: int | None = inspect.getsourcelines(func)[1]
    except (OSError, TypeError):
        source, line = "", None
    try:
        filename = inspect.getsourcefile(func)
    except TypeError:
        filename = None
    file = Path(filename).resolve() if filename else None
    git = _git_info(file) if file is not None and file.exists() else None
    return SourceInfo(
        module=module,
        name=name,
        file=file,
        line=line,
        source=source,
        source_sha256=hashlib.sha256(source.encode("utf-8")).hexdigest(),
        git=git,
    )
