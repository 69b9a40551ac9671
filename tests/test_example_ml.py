"""examples/ml-pipeline runs as written, on S3, with its data set served on localhost."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import REPO_ROOT
from tests.example_runs import EXAMPLES, run, s3_user_env
from tests.local_http import serving_folder
from tests.marquez_server import MarquezServer

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
    assert second["split"][1] == "wine/train.parquet, wine/test.parquet"
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
    # The split typed them: the class an integer, the measurements floats, 54 rows to test on.
    for uid, rows in (("wine/train.parquet", 124), ("wine/test.parquet", 54)):
        path = run(["radops", "datalake", "local-path", uid], env, cwd).stdout.strip()
        table = pq.read_table(path)
        assert table.num_rows == rows
        assert {str(field.type) for field in table.schema} == {"int64", "double"}
        assert str(table.schema.field("class").type) == "int64"

    # The report's lineage goes back through every step to the URL the data came from.
    lineage = out.split("\n$ radops datalake lineage reports/wine-sweep-2.md --depth 6\n")[1]
    for made in (cleaned, "wine/train.parquet, wine/test.parquet", "raw/wine.data"):
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


def test_every_file_of_the_sweeps_has_its_full_lineage_in_marquez(
    tmp_path: Path, wine_url: str, marquez: MarquezServer, lineage_namespace: str
) -> None:
    """With Marquez configured: two sweeps of `train` with a failed call between them
    (``max_depth=0``, which scikit-learn refuses). Marquez's lineage graph of every file made
    holds its creating job and every input up to the URL the data came from."""
    from radops.lake import DataLake
    from radops.lineage.marquez import MarquezClient
    from radops.settings import Settings
    from tests.conftest import TEST_EMAIL
    from tests.marquez_graph import missing_from_graph

    remote = tmp_path / "lake"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO_ROOT),
        "RADOPS_HOME": str(tmp_path / "home"),
        "RADOPS_REMOTE": str(remote),
        "RADOPS_EMAIL": TEST_EMAIL,
        "RADOPS_MARQUEZ_URL": marquez.url,
        "RADOPS_NAMESPACE": lineage_namespace,
        "RADOPS_LINEAGE_TIMEOUT": "30",
    }
    pipeline = [sys.executable, str(EXAMPLE / "pipeline.py"), "--report"]
    run(["radops", "datalake", "add", wine_url, "raw/wine.data"], env, tmp_path)
    run([*pipeline, "reports/a.md", "--max-depth", "1", "2"], env, tmp_path, timeout=180)
    failed = subprocess.run(
        [*pipeline, "reports/b.md", "--max-depth", "0"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert failed.returncode != 0
    assert "max_depth" in failed.stderr
    run([*pipeline, "reports/c.md", "--max-depth", "1", "2", "4"], env, tmp_path, timeout=180)
    run(["radops", "lineage", "flush"], env, tmp_path)

    lake = DataLake(  # no Marquez: the lake's own records are the expected answer
        Settings.load(env={}, home=tmp_path / "reader", remote=str(remote), email=TEST_EMAIL)
    )
    try:
        uids = [meta.key for meta in lake.files()]
        # raw, cleaned, train and test sets, a model and its metrics per depth (1, 2, 4), and
        # the reports of the two sweeps that ran to the end
        assert len(uids) == 1 + 1 + 2 + 3 * 2 + 2
        client = MarquezClient(marquez.url)
        gaps = {uid: missing_from_graph(lake, client, uid) for uid in uids}
        assert {uid: gap for uid, gap in gaps.items() if gap} == {}
        # Marquez shows the tables' columns: the Parquet sets' types from their footers.
        for uid in ("wine/train.parquet", "wine/test.parquet"):
            shown = client.dataset(*lake.store.dataset(uid))
            assert shown is not None
            assert [(f["name"], f["type"]) for f in shown["fields"]][:3] == [
                ("class", "int64"),
                ("alcohol", "double"),
                ("malic_acid", "double"),
            ]
            assert len(shown["fields"]) == 14
        failed_runs = [e for e in lake.lineage.index.events() if e["eventType"] == "FAIL"]
        assert len(failed_runs) == 1
        assert client.run(failed_runs[0]["run"]["runId"])["state"] == "FAILED"  # type: ignore[index]
    finally:
        lake.local.close()
