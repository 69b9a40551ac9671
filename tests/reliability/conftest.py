"""Every fault test's status in ``--reliability-report``, whether it ran, failed or skipped.

A fault test (one that takes the ``report`` fixture) writes its figures while it runs; once it
is over, one more JSON line says how it ended: ``{"test": ..., "status": "passed" | "failed" |
"error" | "skipped", "reason": ...}``. A test that was skipped, or failed before reporting,
thus still has a row in ``python -m tests.reliability.render``, so a reader sees what did not
run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Generator

import pytest

_STATUS = pytest.StashKey[dict[str, str]]()
_REASON_LENGTH = 300


def _reason(report: pytest.TestReport, call: pytest.CallInfo[None]) -> str:
    """One line: the skip reason, or the exception that failed the phase."""
    if report.skipped and isinstance(report.longrepr, tuple):
        text = str(report.longrepr[2]).removeprefix("Skipped: ")
    elif call.excinfo is not None:
        text = call.excinfo.exconly()
    else:
        text = report.longreprtext
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first[:_REASON_LENGTH]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    target: str | None = item.config.getoption("--reliability-report")
    if not target or "report" not in getattr(item, "fixturenames", ()):
        return report
    status = item.stash.setdefault(_STATUS, {"status": "passed", "reason": ""})
    if status["status"] == "passed" and not report.passed:  # the first phase that did not pass
        if report.skipped:
            status["status"] = "skipped"
        else:
            status["status"] = "failed" if report.when == "call" else "error"
        status["reason"] = _reason(report, call)
    if report.when == "teardown":
        _append(target, {"test": item.nodeid, **status})
    return report


def _append(target: str, row: dict[str, str]) -> None:
    """One line, in one write with O_APPEND: never interleaved with another process's."""
    line = json.dumps(row, sort_keys=True) + "\n"
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)
