"""What some tests need beyond the repository and Python, and what they do without it.

Without a capability a test is skipped with a one-line reason, unless the run requires the
capability (``RADOPS_TEST_REQUIRE=userns,specs`` or ``--require userns,specs``; ``.ci/run``
sets both): then the test fails with that same reason, so that a CI machine which lost the
capability cannot pass by skipping.

- ``userns``: ``unshare`` and ``nsenter`` (util-linux) and unprivileged user, mount and PID
  namespaces, for a full or read-only RADOPS_HOME, an unmounted share and a writer in another
  PID namespace. Docker's default seccomp profile denies them.
- ``specs``: the official OpenLineage JSON Schemas and Marquez's OpenAPI spec, which a fresh
  clone does not have (``../shared/specs``, or the folders the environment names: see
  ``tests/olschema.py`` and ``tests/marquez_spec.py``).
"""

from __future__ import annotations

import argparse
import functools
import shutil
import subprocess
from collections.abc import Callable
from typing import NoReturn

import pytest

REQUIRE_ENV = "RADOPS_TEST_REQUIRE"


@functools.cache
def _userns_missing() -> str | None:
    for tool in ("unshare", "nsenter"):
        if shutil.which(tool) is None:
            return f"needs {tool} (util-linux) on PATH"
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "--pid", "--fork", "true"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if probe.returncode != 0:
        said = probe.stderr.strip().splitlines()
        return "unprivileged user, mount and PID namespaces are not permitted here: " + (
            said[-1] if said else f"unshare exited {probe.returncode}"
        )
    return None


def _specs_missing() -> str | None:
    from tests.marquez_spec import spec_missing
    from tests.olschema import schemas_missing

    return schemas_missing() or spec_missing()


# Each capability: why this machine lacks it, or None when it has it.
CAPABILITIES: dict[str, Callable[[], str | None]] = {
    "userns": _userns_missing,
    "specs": _specs_missing,
}

# What this run requires (``--require``), set when pytest is configured: RADOPS_* variables are
# removed from the environment while the tests run.
_required: tuple[str, ...] = ()


def configure(config: pytest.Config) -> None:
    """Remember the capabilities the run requires (called from ``pytest_configure``)."""
    global _required
    _required = tuple(config.getoption("--require"))


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
    if why is not None:
        missing(capability, why)


def missing(capability: str, why: str) -> NoReturn:
    """Skip the test for want of ``capability`` (``why``, one line), or fail it if the run
    requires the capability."""
    if capability not in CAPABILITIES:
        raise ValueError(f"unknown capability {capability!r}")
    if capability in _required:
        pytest.fail(f"{why} (required: {REQUIRE_ENV}={capability})", pytrace=False)
    pytest.skip(f"{why} (set {REQUIRE_ENV}={capability} to make this a failure)")
