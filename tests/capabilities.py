"""What a test may skip for, and when it may not.

Some checks need something a fresh clone or an unusual machine lacks: the official OpenLineage
schemas and Marquez's OpenAPI spec (``../shared/specs``), or unprivileged user namespaces (the
full-disk and unmounted-share fault tests). Such a test skips with a one-line reason, unless
``RADOPS_TEST_REQUIRE`` names the capability (``.ci/run`` sets ``specs,userns``): then the same
reason fails it, so CI always runs the real thing.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

#: The capabilities a test may skip for.
CAPABILITIES = ("specs", "userns")


def required() -> set[str]:
    """The capabilities ``RADOPS_TEST_REQUIRE`` says this run must have."""
    names = {name.strip() for name in os.environ.get("RADOPS_TEST_REQUIRE", "").split(",")}
    return {name for name in names if name}


def missing(capability: str, reason: str) -> NoReturn:
    """Skip the test for want of ``capability`` (one line: ``reason``), or fail it if required."""
    if capability not in CAPABILITIES:
        raise ValueError(f"unknown capability {capability!r}")
    if capability in required():
        pytest.fail(f"{reason} (RADOPS_TEST_REQUIRE={capability})", pytrace=False)
    pytest.skip(reason)
