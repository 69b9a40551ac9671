"""The OpenLineage events of ``file_creator`` runs: valid by the official schemas, and complete.

Every event is checked offline against the OpenLineage 2-0-2 JSON Schemas and the facet schemas
its facets name (``tests/olschema.py``), on a directory remote and on SeaweedFS.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import logging
import platform
import re
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import radops
from radops.data_lake import File, file_creator
from radops.lake import DataLake
from radops.lineage.events import function_of
from radops.lineage.source import GitInfo, SourceInfo, web_url, without_credentials
from tests.conftest import TEST_EMAIL, MakeLake
from tests.olschema import validate_event

MODULE = __name__


class Broken(Exception):
    pass


@file_creator
def explicit_step(src: File, suffix: str, output_uid: str) -> File:
    with src.open() as handle:
        text = handle.read()
    with File(output_uid).open("w") as handle:
        handle.write(text + suffix)
    return File(output_uid)


@file_creator
def implicit_step(src: File, n: int) -> list[File]:
    with src.open() as handle:
        text = handle.read()
    outputs = [File(suffix=".txt") for _ in range(n)]
    for i, out in enumerate(outputs):
        with out.open("w") as handle:
            handle.write(f"{i}:{text}")
    return outputs


@file_creator
def failing_step(src: File, n: int) -> File:
    out = File()
    with out.open("w") as handle:
        handle.write("partial")
    raise Broken(f"failed with n={n}")


@file_creator
def with_nothings(src: File, n: int | None, items: list[Any]) -> dict[str, Any]:
    out = File()
    with src.open() as a, out.open("w") as b:
        b.write(a.read())
    return {"file": out, "none": None, "items": [1, None, {}]}


def put(lake: DataLake, uid: str, text: str) -> File:
    file = File(uid, lake=lake)
    with file.open("w") as handle:
        handle.write(text)
    return file


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def job_events(lake: DataLake, job: str) -> list[dict[str, Any]]:
    """The indexed events of one job, in time order."""
    return [e for e in lake.lineage.index.events() if function_of(e) == job]


def stored_events(lake: DataLake) -> list[dict[str, Any]]:
    """Every event record kept in the lake."""
    records = lake.lineage.records
    return [event for name in records.names() if (event := records.read(name)) is not None]


def dataset_name(lake: DataLake, uid: str) -> tuple[str, str]:
    """(namespace, name) of ``uid`` by the OpenLineage naming convention, worked out here."""
    remote = lake.settings.remote
    if remote.startswith("s3://"):
        bucket, _, prefix = remote.removeprefix("s3://").partition("/")
        prefix = prefix.strip("/")
        return f"s3://{bucket}", f"{prefix}/{uid}" if prefix else uid
    return "file", str(Path(remote).resolve() / uid)


Run = Callable[[DataLake], str]


def run_explicit(lake: DataLake) -> str:
    explicit_step(put(lake, "in.txt", "abc"), "!", output_uid="out/explicit.txt")
    return f"{MODULE}.explicit_step"


def run_implicit(lake: DataLake) -> str:
    implicit_step(put(lake, "in.txt", "abc"), 2)
    return f"{MODULE}.implicit_step"


def run_failing(lake: DataLake) -> str:
    with pytest.raises(Broken):
        failing_step(put(lake, "in.txt", "abc"), 1)
    return f"{MODULE}.failing_step"


@pytest.mark.parametrize("run", [run_explicit, run_implicit, run_failing])
def test_every_event_validates(lake: DataLake, run: Run) -> None:
    """START and COMPLETE (or FAIL) events, indexed and stored in the lake, are valid."""
    job = run(lake)
    indexed = list(lake.lineage.index.events())
    assert {e["eventType"] for e in indexed if function_of(e) == job} == (
        {"START", "FAIL"} if job.endswith("failing_step") else {"START", "COMPLETE"}
    )
    stored = stored_events(lake)
    assert stored  # COMPLETE and FAIL records are kept in the lake
    for event in [*indexed, *stored]:
        validate_event(event)


def test_start_and_complete_share_one_uuid7_run_id(lake: DataLake) -> None:
    """A run is one START and one COMPLETE with the same UUIDv7 runId."""
    job = run_implicit(lake)
    start, complete = job_events(lake, job)
    assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
    run_id = start["run"]["runId"]
    assert complete["run"]["runId"] == run_id
    parsed = uuid.UUID(run_id)
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert start["eventTime"] <= complete["eventTime"]
    # A second run of another call gets another runId.
    implicit_step(File("in.txt", lake=lake), 3)
    run_ids = {e["run"]["runId"] for e in job_events(lake, job)}
    assert len(run_ids) == 2


def test_job_is_namespaced_and_named_after_the_function(make_lake: MakeLake) -> None:
    """The job is ``module.qualname`` in namespace "radops", or in the configured namespace."""
    default = make_lake("default-namespace")
    job = run_explicit(default)
    assert job == "tests.test_events.explicit_step"
    assert {e["job"]["namespace"] for e in job_events(default, job)} == {"radops"}

    team = make_lake("team-namespace", namespace="team-pipes")
    implicit_step(put(team, "in2.txt", "x"), 1)
    events = job_events(team, f"{MODULE}.implicit_step")
    assert events
    assert {e["job"]["namespace"] for e in events} == {"team-pipes"}
    for event in events:
        validate_event(event)


def test_run_facets_describe_engine_originator_parameters_and_code(lake: DataLake) -> None:
    """processing_engine names radops; the radops facet has e-mail, versions, parameters, code."""
    job = run_explicit(lake)
    source = textwrap.dedent(inspect.getsource(inspect.unwrap(explicit_step)))
    for event in job_events(lake, job):
        facets = event["run"]["facets"]
        engine = facets["processing_engine"]
        assert engine["name"] == "radops"
        assert engine["version"] == radops.__version__
        facet = facets["radops_run"]
        assert facet["email"] == TEST_EMAIL
        assert facet["radopsVersion"] == radops.__version__
        assert facet["pythonVersion"] == platform.python_version()
        assert facet["parameters"] == {"suffix": "!"}  # the File and output_uid are not
        assert facet["sourceSha256"] == sha256(source)
        assert re.fullmatch("[0-9a-f]{64}", facet["callDigest"])
        assert facet["inputs"] == ["in.txt"]
    complete = job_events(lake, job)[-1]
    assert complete["run"]["facets"]["radops_run"]["outputs"] == ["out/explicit.txt"]
    assert complete["run"]["facets"]["radops_run"]["returned"] == {
        "radops.File": "out/explicit.txt"
    }


def test_job_facets_give_the_job_type_and_source_code(lake: DataLake) -> None:
    """jobType says BATCH/RADOPS; sourceCode holds the function's Python source."""
    job = run_implicit(lake)
    for event in job_events(lake, job):
        facets = event["job"]["facets"]
        assert facets["jobType"]["processingType"] == "BATCH"
        assert facets["jobType"]["integration"] == "RADOPS"
        assert facets["jobType"]["jobType"] == "FILE_CREATOR"
        assert facets["sourceCode"]["language"] == "python"
        code = facets["sourceCode"]["sourceCode"]
        assert code.startswith("@file_creator\ndef implicit_step(")
        assert "File(suffix=" in code


def test_datasets_follow_the_naming_convention(lake: DataLake) -> None:
    """S3 files are s3://<bucket> + key (with the prefix); directory files are file + path."""
    job = run_explicit(lake)
    start, complete = job_events(lake, job)
    expected_in = dataset_name(lake, "in.txt")
    expected_out = dataset_name(lake, "out/explicit.txt")
    for event in (start, complete):
        assert [(d["namespace"], d["name"]) for d in event["inputs"]] == [expected_in]
    assert [(d["namespace"], d["name"]) for d in complete["outputs"]] == [expected_out]
    if lake.settings.remote.startswith("s3://"):
        assert expected_out[0] == "s3://lake"
        assert expected_out[1].endswith("/out/explicit.txt")
        assert not expected_out[1].startswith("/")
    else:
        assert expected_out[0] == "file"
        assert Path(expected_out[1]).is_absolute()


def test_output_facets_give_version_lifecycle_and_size(lake: DataLake) -> None:
    """Each output has its sha256 as version, lifecycle CREATE and its size in bytes."""
    job = run_implicit(lake)
    complete = job_events(lake, job)[-1]
    uids = complete["run"]["facets"]["radops_run"]["outputs"]
    assert len(uids) == 2
    assert [(d["namespace"], d["name"]) for d in complete["outputs"]] == [
        dataset_name(lake, uid) for uid in uids
    ]
    for i, output in enumerate(complete["outputs"]):
        content = f"{i}:abc"
        assert output["facets"]["version"]["datasetVersion"] == sha256(content)
        assert output["facets"]["lifecycleStateChange"]["lifecycleStateChange"] == "CREATE"
        statistics = output["outputFacets"]["outputStatistics"]
        assert statistics["size"] == len(content.encode())
        assert statistics["fileCount"] == 1


def test_inputs_have_a_version_facet(lake: DataLake) -> None:
    """Inputs carry their sha256 as datasetVersion, in START and COMPLETE."""
    job = run_explicit(lake)
    for event in job_events(lake, job):
        [dataset] = event["inputs"]
        assert dataset["facets"]["version"]["datasetVersion"] == sha256("abc")


def test_a_fail_event_carries_the_error(lake: DataLake) -> None:
    """FAIL has the error message and the Python stack trace, and lists no outputs."""
    job = run_failing(lake)
    start, fail = job_events(lake, job)
    assert fail["eventType"] == "FAIL"
    assert fail["run"]["runId"] == start["run"]["runId"]
    error = fail["run"]["facets"]["errorMessage"]
    assert error["message"] == "Broken: failed with n=1"
    assert error["programmingLanguage"] == "python"
    assert "failing_step" in error["stackTrace"]
    assert fail["outputs"] == []
    assert fail["run"]["facets"]["radops_run"]["outputs"] == []
    validate_event(fail)


# -- where the code lives -----------------------------------------------------------------------

STEP_MODULE = '''\
"""A pipeline kept in its own git repository."""

from radops.data_lake import File, file_creator


@file_creator
def shout(src):
    with src.open() as handle:
        text = handle.read()
    out = File(suffix=".txt")
    with out.open("w") as handle:
        handle.write(text.upper())
    return out
'''


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True, timeout=30
    )
    return done.stdout.strip()


def make_repo(root: Path, origin: str | None) -> Path:
    """A git repository with ``pipes/steps.py`` committed on branch main."""
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "dev@example.com")
    git(root, "config", "user.name", "Dev")
    git(root, "config", "commit.gpgsign", "false")
    if origin:
        git(root, "remote", "add", "origin", origin)
    (root / "pipes").mkdir()
    (root / "pipes" / "steps.py").write_text(STEP_MODULE)
    git(root, "add", "pipes/steps.py")
    git(root, "commit", "-q", "-m", "steps")
    return root


@pytest.fixture
def import_file() -> Iterator[Callable[[Path], ModuleType]]:
    """Import a file as a module with a unique name; forget it afterwards."""
    names: list[str] = []

    def load(path: Path) -> ModuleType:
        name = f"pipes_{uuid.uuid4().hex}"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        names.append(name)
        spec.loader.exec_module(module)
        return module

    yield load
    for name in names:
        sys.modules.pop(name, None)


def decorator_line(path: Path) -> int:
    return path.read_text().splitlines().index("@file_creator") + 1


def test_source_code_location_links_the_commit(
    lake: DataLake,
    tmp_path: Path,
    import_file: Callable[[Path], ModuleType],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """In a clean git checkout, the job links to the function at the commit that ran."""
    repo = make_repo(tmp_path / "repo", "git@github.com:acme/pipes.git")
    commit = git(repo, "rev-parse", "HEAD")
    module = import_file(repo / "pipes" / "steps.py")
    with caplog.at_level(logging.INFO, logger="radops"):
        out = module.shout(put(lake, "in.txt", "abc"))
    with out.open() as handle:
        assert handle.read() == "ABC"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    line = decorator_line(repo / "pipes" / "steps.py")
    events = job_events(lake, f"{module.__name__}.shout")
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    for event in events:
        validate_event(event)
        location = event["job"]["facets"]["sourceCodeLocation"]
        assert location["type"] == "git"
        assert location["url"] == (
            f"https://github.com/acme/pipes/blob/{commit}/pipes/steps.py#L{line}"
        )
        assert location["repoUrl"] == "git@github.com:acme/pipes.git"
        assert location["path"] == "pipes/steps.py"
        assert location["version"] == commit
        assert location["branch"] == "main"
        assert "codeWarning" not in event["run"]["facets"]["radops_run"]


def test_uncommitted_changes_are_warned_about(
    lake: DataLake,
    tmp_path: Path,
    import_file: Callable[[Path], ModuleType],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A step whose file has uncommitted changes logs a warning, recorded as codeWarning."""
    repo = make_repo(tmp_path / "repo", "https://github.com/acme/pipes.git")
    path = repo / "pipes" / "steps.py"
    path.write_text(STEP_MODULE + "\n# edited, not committed\n")
    module = import_file(path)
    with caplog.at_level(logging.INFO, logger="radops"):
        module.shout(put(lake, "in.txt", "abc"))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("pipes/steps.py has uncommitted changes" in m for m in warnings), warnings
    for event in job_events(lake, f"{module.__name__}.shout"):
        validate_event(event)
        assert "uncommitted changes" in event["run"]["facets"]["radops_run"]["codeWarning"]
        assert event["job"]["facets"]["sourceCodeLocation"]["type"] == "git"


def test_a_source_warning_is_logged_once_per_process(
    lake: DataLake,
    tmp_path: Path,
    import_file: Callable[[Path], ModuleType],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Once per process, even when the step is decorated again (as a step pickled by value to
    Dask workers is, at every task); every run still records the warning."""
    repo = make_repo(tmp_path / "repo", "https://github.com/acme/pipes.git")
    path = repo / "pipes" / "steps.py"
    path.write_text(STEP_MODULE + "\n# edited, not committed\n")
    module = import_file(path)
    rebuilt = file_creator(module.shout.__wrapped__)
    with caplog.at_level(logging.WARNING, logger="radops"):
        module.shout(put(lake, "a.txt", "abc"))
        rebuilt(put(lake, "b.txt", "def"))
    warned = [r for r in caplog.records if "uncommitted changes" in r.getMessage()]
    assert len(warned) == 1, warned
    completes = [
        e for e in job_events(lake, f"{module.__name__}.shout") if e["eventType"] == "COMPLETE"
    ]
    assert len(completes) == 2
    assert all("uncommitted" in e["run"]["facets"]["radops_run"]["codeWarning"] for e in completes)


def test_a_token_in_the_origin_is_not_recorded(
    lake: DataLake, tmp_path: Path, import_file: Callable[[Path], ModuleType]
) -> None:
    """An https origin with credentials (as CI checkouts have) is recorded without them."""
    token = "ghp_" + "s3cr3t" * 6
    repo = make_repo(tmp_path / "repo", f"https://x-access-token:{token}@github.com/acme/pipes")
    module = import_file(repo / "pipes" / "steps.py")
    module.shout(put(lake, "in.txt", "abc"))
    events = job_events(lake, f"{module.__name__}.shout")
    assert events
    for event in [*events, *stored_events(lake)]:
        assert token not in str(event)
        assert "x-access-token" not in str(event)
    location = events[-1]["job"]["facets"]["sourceCodeLocation"]
    assert location["repoUrl"] == "https://github.com/acme/pipes"
    assert location["url"].startswith("https://github.com/acme/pipes/blob/")


def test_without_origin_no_location_is_recorded_and_the_warning_says_why(
    lake: DataLake,
    tmp_path: Path,
    import_file: Callable[[Path], ModuleType],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No origin, no link: the job has no sourceCodeLocation (a file:// URL is a dead link in
    the Marquez UI), its source code is kept, and the radops facet says why there is no link."""
    repo = make_repo(tmp_path / "repo", None)
    module = import_file(repo / "pipes" / "steps.py")
    with caplog.at_level(logging.INFO, logger="radops"):
        module.shout(put(lake, "in.txt", "abc"))
    assert any("no origin remote" in r.getMessage() for r in caplog.records)
    complete = job_events(lake, f"{module.__name__}.shout")[-1]
    validate_event(complete)
    assert "sourceCodeLocation" not in complete["job"]["facets"]
    assert "def shout" in complete["job"]["facets"]["sourceCode"]["sourceCode"]
    assert "no origin remote" in complete["run"]["facets"]["radops_run"]["codeWarning"]
    assert "file://" not in json.dumps(complete)


# -- links to the code, from origin URLs ----------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "url"),
    [
        ("git@github.com:acme/pipes.git", "https://github.com/acme/pipes"),
        ("git@github.com:acme/pipes", "https://github.com/acme/pipes"),
        ("github.com:acme/pipes.git", "https://github.com/acme/pipes"),
        ("ssh://git@github.com/acme/pipes.git", "https://github.com/acme/pipes"),
        (
            "ssh://git@gitlab.example.com:2222/grp/sub/repo.git",
            "https://gitlab.example.com/grp/sub/repo",
        ),
        ("git://example.org/pipes.git", "https://example.org/pipes"),
        ("https://github.com/acme/pipes.git", "https://github.com/acme/pipes"),
        ("https://github.com/acme/pipes/", "https://github.com/acme/pipes"),
        ("http://git.example.org:8080/acme/pipes.git", "https://git.example.org/acme/pipes"),
        ("https://user:token@github.com/acme/pipes.git", "https://github.com/acme/pipes"),
        ("git@gitlab.com:group/subgroup/project.git", "https://gitlab.com/group/subgroup/project"),
        ("/srv/git/pipes.git", None),
        ("file:///srv/git/pipes.git", None),
        ("", None),
    ],
)
def test_web_url_of_origins(origin: str, url: str | None) -> None:
    """ssh, scp-like and https origins (with .git, ports or credentials) give an https URL."""
    assert web_url(origin) == url


@pytest.mark.parametrize(
    ("origin", "recorded"),
    [
        ("https://x-access-token:abc@github.com/a/b.git", "https://github.com/a/b.git"),
        ("https://oauth2@gitlab.com/a/b.git", "https://gitlab.com/a/b.git"),
        ("ssh://git:pw@example.org/a/b.git", "ssh://git@example.org/a/b.git"),
        ("git@github.com:a/b.git", "git@github.com:a/b.git"),
        ("https://github.com/a/b.git", "https://github.com/a/b.git"),
    ],
)
def test_credentials_are_removed_from_origins(origin: str, recorded: str) -> None:
    """Passwords and tokens never reach the recorded repoUrl; ssh user names stay."""
    assert without_credentials(origin) == recorded


def source_in(origin: str) -> SourceInfo:
    git_info = GitInfo(Path("/repo"), "c0ffee" * 6 + "abcd", "main", origin, "pipes/s.py", False)
    return SourceInfo("pipes.s", "step", Path("/repo/pipes/s.py"), 7, "", "", git_info)


@pytest.mark.parametrize(
    ("origin", "url"),
    [
        ("git@github.com:acme/pipes.git", "https://github.com/acme/pipes/blob/{c}/pipes/s.py#L7"),
        ("git@gitlab.com:acme/pipes.git", "https://gitlab.com/acme/pipes/-/blob/{c}/pipes/s.py#L7"),
        (
            "https://gitlab.example.org/a/b.git",
            "https://gitlab.example.org/a/b/-/blob/{c}/pipes/s.py#L7",
        ),
        (
            "git@github.com:acme/gitlab-tools.git",
            "https://github.com/acme/gitlab-tools/blob/{c}/pipes/s.py#L7",
        ),
        ("/srv/git/pipes.git", None),
    ],
)
def test_source_url_is_github_or_gitlab_style(origin: str, url: str | None) -> None:
    """GitLab hosts get /-/blob/ links, every other host /blob/ (GitHub style)."""
    source = source_in(origin)
    assert source.git is not None
    expected = url.format(c=source.git.commit) if url else None
    assert source.url == expected


@pytest.mark.parametrize("origin", ["/srv/git/pipes.git", "file:///srv/git/pipes.git", "../up"])
def test_an_origin_that_is_not_a_web_address_gives_a_warning(origin: str) -> None:
    """A clone of a local path has no link; the warning names the origin, so the creation's
    code is never shown as "not recorded" without a reason."""
    source = source_in(origin)
    assert source.url is None
    assert source.warning == (
        f"the origin remote of /repo ({origin}) is not a web address: no code link"
    )


def test_events_of_every_kind_of_run_validate(make_lake: MakeLake, tmp_path: Path) -> None:
    """add, File.write, a file_creator run and failure, rm: every stored event is valid."""
    lake = make_lake("everything")
    source = tmp_path / "source.txt"
    source.write_text("from disk")
    lake.add_file(source, "added.txt")
    with File("written.txt", lake=lake).open("w") as handle:
        handle.write("written")

    @file_creator
    def concat(a: File, b: File, output_uid: str) -> File:
        out = File(output_uid)
        with a.open() as x, b.open() as y, out.open("w") as handle:
            handle.write(x.read() + y.read())
        return out

    @file_creator
    def broken(a: File) -> File:
        raise RuntimeError("boom")

    concat(File("added.txt", lake=lake), File("written.txt", lake=lake), output_uid="both.txt")
    with pytest.raises(RuntimeError, match="boom"):
        broken(File("added.txt", lake=lake))
    lake.delete("both.txt")

    events = list(lake.lineage.index.events())
    jobs = {(function_of(event), event["eventType"]) for event in events}
    assert {
        ("radops.datalake.add", "COMPLETE"),
        ("radops.File.write", "COMPLETE"),
        ("radops.datalake.rm", "COMPLETE"),
        (f"{__name__}.test_events_of_every_kind_of_run_validate.<locals>.broken", "FAIL"),
    } <= jobs
    for event in events:
        validate_event(event)


def test_parameters_and_return_values_are_recorded_exactly_nones_included(lake: DataLake) -> None:
    """None values and empty objects in parameters and return values are part of the call: the
    record keeps them (openlineage-python's serde alone would drop them), and a skipped call
    returns the same value."""
    first = with_nothings(put(lake, "in.txt", "x"), None, [None, {}, [None]])
    [complete] = [
        e for e in job_events(lake, f"{__name__}.with_nothings") if e["eventType"] == "COMPLETE"
    ]
    validate_event(complete)
    facet = complete["run"]["facets"]["radops_run"]
    assert facet["parameters"] == {"n": None, "items": [None, {}, [None]]}
    assert facet["returned"] == {
        "file": {"radops.File": first["file"].uid},
        "none": None,
        "items": [1, None, {}],
    }
    again = with_nothings(File("in.txt", lake=lake), None, [None, {}, [None]])
    assert again == first
