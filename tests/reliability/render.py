"""Render ``--reliability-report`` JSON lines as the Markdown table of docs/reliability.md.

Usage: ``python -m tests.reliability.render REPORT.jsonl``

The report holds two kinds of line: the figures a fault test reported while it ran (``fault``,
``remote``, ``trials``, ...), and, once the test was over, its status (``test``, ``status``,
``reason``; see ``tests/reliability/conftest.py``). Each row of figures gets the status of its
test; a test that ended without figures (skipped, or failed before it could report) gets a row
of its own, with its reason, so that the table shows what did not run. A line at the end counts
the fault tests by status.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

COLUMNS = (
    "fault",
    "remote",
    "trials",
    "failures",
    "data_lost",
    "events_lost",
    "status",
    "notes",
)
UNKNOWN = "unknown (no status line: an older report, or an interrupted run)"


def _status(line: dict[str, Any]) -> str:
    reason = line.get("reason") or ""
    return f"{line['status']}: {reason}" if reason else str(line["status"])


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def rows(lines: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], Counter[str]]:
    """The table's rows (figures with their test's status, then tests without figures) and
    the number of fault tests per status.

    A status line follows the figures of its test (both are written by the process that ran
    it), so reports of several runs appended to one file pair up correctly.
    """
    table: list[dict[str, Any]] = []
    waiting: dict[str, list[dict[str, Any]]] = {}
    statuses: Counter[str] = Counter()
    for line in lines:
        if "fault" in line:
            row = {**line, "status": UNKNOWN}
            waiting.setdefault(str(line.get("test")), []).append(row)
            table.append(row)
            continue
        statuses[line["status"]] += 1
        reported = waiting.pop(line["test"], [])
        for row in reported:
            row["status"] = _status(line)
        if not reported:  # nothing reported: it did not run to its figures
            name = line["test"].partition("::")[2] or line["test"]
            table.append(
                dict.fromkeys(COLUMNS, "-")
                | {"fault": f"`{name}`", "status": _status(line), "no_figures": True}
            )
    statuses["unknown"] += len({test for test, left in waiting.items() if left})
    table.sort(key=lambda row: (bool(row.get("no_figures")), str(row["fault"]), str(row["remote"])))
    return table, statuses


def render(path: Path) -> str:
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    table, statuses = rows(lines)
    out = ["| " + " | ".join(c.replace("_", " ") for c in COLUMNS) + " |"]
    out.append("|" + "---|" * len(COLUMNS))
    for row in table:
        out.append("| " + " | ".join(_cell(row.get(c, "")) for c in COLUMNS) + " |")
    counted = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()) if n)
    out.append("")
    out.append(f"Fault tests: {counted or 'none'}.")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render(Path(sys.argv[1])))
