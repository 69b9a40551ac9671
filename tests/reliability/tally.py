"""What the trials of a fault test saw, counted trial by trial, then reported and asserted.

A fault test runs every trial to the end, checks the lake, the local storage and the lineage
records after each one, and records what it found in a :class:`Trial`; the test then reports
the :class:`Tally`'s figures (``report(**tally.figures(), ...)``) and asserts that they are 0.
A regression is thus a non-zero figure in the reliability report and a failing test, never a
figure written as a constant.
"""

from __future__ import annotations

import attrs


@attrs.define
class Trial:
    """One trial: what went wrong, and which files' data or lineage events were lost."""

    label: str
    problems: list[str] = attrs.Factory(list)
    data_lost: set[str] = attrs.Factory(set)  # files (uids) whose data is missing or wrong
    events_lost: set[str] = attrs.Factory(set)  # files or events whose lineage record is missing
    # Losses an earlier trial of the same test counted: seen again, they are not new.
    counted_before: set[str] = attrs.Factory(set)

    def fail(self, problem: str) -> None:
        """Something the fault must not cause happened (nothing lost, or not only)."""
        self.problems.append(problem)

    def lose_data(self, uid: str, why: str) -> None:
        """The data of ``uid`` is missing or wrong after the trial."""
        if f"data {uid}" not in self.counted_before:
            self.data_lost.add(uid)
            self.problems.append(f"data lost: {uid}: {why}")

    def lose_event(self, key: str, why: str) -> None:
        """The lineage event of ``key`` (a uid, or a run and event type) is missing."""
        if f"event {key}" not in self.counted_before:
            self.events_lost.add(key)
            self.problems.append(f"event lost: {key}: {why}")

    @property
    def failed(self) -> bool:
        return bool(self.problems)


@attrs.define
class Tally:
    """Every trial of one fault test; a file or event lost is counted once, when first seen."""

    trials: list[Trial] = attrs.Factory(list)

    def trial(self, label: str) -> Trial:
        """Start counting one more trial."""
        counted = {f"data {uid}" for trial in self.trials for uid in trial.data_lost}
        counted |= {f"event {key}" for trial in self.trials for key in trial.events_lost}
        self.trials.append(Trial(label, counted_before=counted))
        return self.trials[-1]

    @property
    def failures(self) -> int:
        """Trials in which anything went wrong."""
        return sum(trial.failed for trial in self.trials)

    @property
    def data_lost(self) -> int:
        return sum(len(trial.data_lost) for trial in self.trials)

    @property
    def events_lost(self) -> int:
        return sum(len(trial.events_lost) for trial in self.trials)

    def figures(self) -> dict[str, int]:
        """The counted columns of the reliability report."""
        return {
            "trials": len(self.trials),
            "failures": self.failures,
            "data_lost": self.data_lost,
            "events_lost": self.events_lost,
        }

    def problems(self, limit: int = 40) -> str:
        """What went wrong, trial by trial (the first ``limit`` lines): an assertion's message."""
        lines = [f"{t.label}: {p}" for t in self.trials for p in t.problems]
        more = [f"... and {len(lines) - limit} more"] if len(lines) > limit else []
        return "\n".join(lines[:limit] + more)
