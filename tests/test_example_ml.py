"""examples/ml-pipeline runs as written, on S3, with its data set served on localhost."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.example_runs import EXAMPLES, run, s3_user_env
from tests.local_http import serving_folder

EXAMPLE = EXAMPLES / "ml-pipeline"
ROW = re.compile(r"^(ran|skipped) +(\S.*?) +-> (.+)$", re.MULTILINE)
SWEEP_1 = ["clean", "split", "train max_depth=1", "evaluate max_depth=1"]
SWEEP_1 += ["train max_depth=2", "evaluate max_depth=2", "report"]


@pytest.fixture
def wine_url(tmp_path: Path) -> Iterator[str]:
    """UCI's wine.data (from scikit-learn's copy, plus dirty rows) served on loopback."""
    served = tmp_path / "served"
    served.mkdir()
    subprocess.run(
        [sys.executable, str(EXAMPLE / "make_dataset.py"), str(served / "wine.data")],
        check=True,
        capture_output=True,
    )
    with serving_folder(served) as url:
        yield f"{url}/wine.data"


def pipeline_runs(stdout: str) -> list[dict[str, tuple[str, str]]]:
    """For each `pipeline.py` run in run.sh's output: step label -> (ran|skipped, outputs)."""
    blocks = stdout.split("\n$ ")
    runs = [block for block in blocks if "/pipeline.py " in block.split("\n", 1)[0]]
    return [
        {label: (status, outputs) for status, label, outputs in ROW.findall(block)}
        for block in runs
    ]


def test_ml_pipeline_sweeps_rerun_only_what_changed_and_trace_the_report(
    seaweed, tmp_path, wine_url
):
    """run.sh adds the data from its URL; sweeps rerun only new models; lineage reaches the URL."""
    env = s3_user_env(seaweed, tmp_path / "home", "ml-pipeline")
    env["COLUMNS"] = "250"  # rich draws the lineage boxes this wide: no uid is wrapped
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()

    result = run(["bash", str(EXAMPLE / "run.sh"), wine_url], env, cwd, timeout=180)
    out, err = result.stdout, result.stderr

    assert f"\n$ radops datalake add {wine_url} raw/wine.data\n" in out
    assert re.search(r"^added raw/wine\.data \(\d+ bytes\) to s3://lake/ml-pipeline-", err, re.M)

    first, second, third = pipeline_runs(out)
    assert list(first) == SWEEP_1
    assert {status for status, _ in first.values()} == {"ran"}
    # The sweep grows by max_depth=4: the data steps and the models already made are skipped,
    # the new model is trained and evaluated, and the new report is written.
    assert list(second) == [*SWEEP_1[:-1], "train max_depth=4", "evaluate max_depth=4", "report"]
    ran = [label for label, (status, _) in second.items() if status == "ran"]
    assert ran == ["train max_depth=4", "evaluate max_depth=4", "report"]
    assert all(second[label][1] == first[label][1] for label in SWEEP_1[:-1])  # same files
    assert second["split"][1] == "wine/train.csv, wine/test.csv"
    assert second["report"][1] == "reports/wine-sweep-2.md"
    assert re.fullmatch(
        r"examples\.ml-pipeline\.pipeline\.train/[0-9a-f]{32}-0\.pkl",
        second["train max_depth=4"][1],
    )
    # Unchanged: nothing runs, and radops says why on stderr.
    assert {status for status, _ in third.values()} == {"skipped"}
    assert third == {label: ("skipped", outputs) for label, (_, outputs) in second.items()}
    skips = re.findall(
        r"^radops: examples\.ml-pipeline\.pipeline\.(\w+) skipped: its outputs are already",
        err,
        re.M,
    )
    assert len(skips) == 6 + 9

    # The report: one row per model, real scores, on the 54 test rows (30 % of 178 clean rows).
    report = out.split("\nreports/wine-sweep-2.md:\n")[-1].split("\n$ ")[0]
    scores = re.findall(r"^\| max_depth=(\d) \| (\d\.\d{4}) \| (\d\.\d{4}) \| 54 \|$", report, re.M)
    assert sorted(depth for depth, _, _ in scores) == ["1", "2", "4"]
    assert all(0.5 < float(accuracy) <= 1 for _, accuracy, _ in scores)
    assert re.search(r"^Best: max_depth=\d$", report, re.M)

    # The cleaning step dropped the five dirty rows: 178 wines and a header remain.
    cleaned = first["clean"][1]
    path = run(["radops", "datalake", "local-path", cleaned], env, cwd).stdout.strip()
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("class,alcohol,") and len(lines) == 179

    # The report's lineage goes back through every step to the URL the data came from.
    lineage = out.split("\n$ radops datalake lineage reports/wine-sweep-2.md --depth 6\n")[1]
    for made in (cleaned, "wine/train.csv, wine/test.csv", "raw/wine.data"):
        assert f"\n{made} was made by:\n" in lineage
    for expected in (
        "function examples.ml-pipeline.pipeline.report",
        "function examples.ml-pipeline.pipeline.evaluate",
        "function examples.ml-pipeline.pipeline.train",
        "function examples.ml-pipeline.pipeline.split",
        "function examples.ml-pipeline.pipeline.clean",
        "function radops.datalake.add",
        "max_depth = 4",
        "test_fraction = 0.3",
        "uid reports/wine-sweep-2.md",
        wine_url,
    ):
        assert expected in lineage, expected
    assert lineage.count("function examples.ml-pipeline.pipeline.train") == 3
    assert lineage.count("function examples.ml-pipeline.pipeline.evaluate") == 3
