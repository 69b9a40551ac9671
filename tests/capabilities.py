"""What some tests need from the machine beyond Python, and what they do without it.

Without a capability a test is skipped with a one-line reason, unless the run requires the
capability (``RADOPS_TEST_REQUIRE=userns`` or ``--require userns``): then the test fails with
that same reason, so that a CI machine which lost the capability cannot pass by skipping.

- ``userns``: ``unshare`` and ``nsenter`` (util-linux) and unprivileged user and mount
  namespaces, for a full or read-only RADOPS_HOME and an unmounted share. Docker's default
  seccomp profile denies them.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import subprocess
from collections.abc import Callable

import pytest

REQUIRE_ENV = "RADOPS_TEST_REQUIRE"


@functools.cache
def _userns_missing() -> str | None:
    for tool in ("unshare", "nsenter"):
        if shutil.which(tool) is None:
            return f"needs {tool} (util-linux) on PATH"
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "true"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if probe.returncode != 0:
        said = probe.stderr.strip().splitlines()
        return "unprivileged user and mount namespaces are not permitted here: " + (
            said[-1] if said else f"unshare exited {probe.returncode}"
        )
    return None


# Each capability: why this machine lacks it, or None when it has it.
CAPABILITIES: dict[str, Callable[[], str | None]] = {"userns": _userns_missing}


def parse_required(names: str) -> tuple[str, ...]:
    """The capabilities named in ``names`` (comma-separated): the type of ``--require``.

    Raises:
        argparse.ArgumentTypeError: a name that is not a known capability (a typo would
            silently skip); pytest reports it as a usage error.
    """
    required = tuple(sorted({name.strip() for name in names.split(",") if name.strip()}))
    if unknown := [name for name in required if name not in CAPABILITIES]:
        raise argparse.ArgumentTypeError(
            f"unknown capability {', '.join(unknown)} in {REQUIRE_ENV} or --require "
            f"(known: {', '.join(sorted(CAPABILITIES))})"
        )
    return required


def need(config: pytest.Config, capability: str) -> None:
    """Go on if the machine has ``capability``; otherwise skip, or fail if the run requires it."""
    why = CAPABILITIES[capability]()
    if why is None:
        return
    if capability in config.getoption("--require"):
        pytest.fail(f"{why} (required: {REQUIRE_ENV}={capability})", pytrace=False)
    pytest.skip(f"{why} (set {REQUIRE_ENV}={capability} to make this a failure)")
