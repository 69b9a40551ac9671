"""UIDs: which names are valid, and that no uid can ever address a path outside its root."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radops.data_lake import DataLake, File
from radops.errors import InvalidUidError, LocalStorageError, RadopsError
from radops.settings import Settings
from radops.uids import MAX_UID_BYTES, safe_path, validate_uid


@pytest.mark.parametrize(
    ("uid", "why"),
    [
        ("", "it is empty"),
        ("/etc/passwd", "starts with '/'"),
        ("/", "starts with '/'"),
        (".", r"'\.' or '\.\.' segment"),
        ("..", r"'\.' or '\.\.' segment"),
        ("../outside", r"'\.' or '\.\.' segment"),
        ("a/../../b", r"'\.' or '\.\.' segment"),
        ("a/./b", r"'\.' or '\.\.' segment"),
        ("a/..", r"'\.' or '\.\.' segment"),
        ("a//b", "empty segment"),
        ("folder/", "empty segment"),
        ("a\\b", "backslash"),
        ("..\\..\\windows", "backslash"),
        ("a\x00b", "control character"),
        ("line\nbreak", "control character"),
        ("tab\there", "control character"),
        ("bell\x07", "control character"),
        ("del\x7f", "control character"),
        ("c1\x85", "control character"),
        ("data.csv#2", "'#'"),
        ("x" * (MAX_UID_BYTES + 1), f"the limit is {MAX_UID_BYTES}"),
        ("é" * 513, f"1026 bytes long in UTF-8, the limit is {MAX_UID_BYTES}"),
        ("a" * 256, "segment is over 255 bytes"),
        (".radops", "reserved"),
        (".radops/meta/x.json", "reserved"),
        ("lone\ud800surrogate", "not valid Unicode"),
    ],
)
def test_invalid_uids_are_refused_with_the_reason(uid: str, why: str) -> None:
    """Each malformed uid raises InvalidUidError whose message names the uid's problem."""
    with pytest.raises(InvalidUidError, match=why):
        validate_uid(uid)


@pytest.mark.parametrize("uid", [None, 42, b"bytes/uid", Path("a/b"), ["a"]])
def test_a_uid_must_be_a_string(uid: object) -> None:
    """Anything but a str is refused, naming the type that was given."""
    with pytest.raises(InvalidUidError, match=f"must be a string, not {type(uid).__name__}"):
        validate_uid(uid)


def test_invalid_uid_error_is_a_value_error_and_a_radops_error() -> None:
    """InvalidUidError can be caught as ValueError or as RadopsError."""
    with pytest.raises(ValueError, match="empty"):
        validate_uid("")
    assert issubclass(InvalidUidError, RadopsError)


@pytest.mark.parametrize(
    "uid",
    [
        "data.csv",
        "raw/2024/01/data.csv",
        "a",
        ".hidden",
        "...",
        "a..b/c.d",
        "folder/.radops",  # reserved only as the first segment
        ".radopsx/file",
        "spaces are fine/and so are - dashes_and+plus",
        "données/été/naïve.txt",
        "日本語/ファイル.bin",
        "emoji/🙂.png",
        "a" * 255,
        "/".join(["a" * 255] * 3 + ["a" * 254, "b"]),  # exactly 1024 bytes
        "/".join(["é" * 127] * 4),
    ],
)
def test_valid_uids_are_returned_unchanged(uid: str) -> None:
    """Relative keys with folders, dots inside names and any printable Unicode are valid."""
    assert validate_uid(uid) == uid


def test_file_handle_validates_its_uid() -> None:
    """File() refuses an invalid uid before doing anything else."""
    with pytest.raises(InvalidUidError, match=r"'\.' or '\.\.' segment"):
        File("../escape")


def test_safe_path_joins_a_valid_uid_under_the_root(tmp_path: Path) -> None:
    """safe_path(root, uid) is root / uid for a valid uid."""
    assert safe_path(tmp_path, "a/b/c.txt") == tmp_path / "a" / "b" / "c.txt"


def test_safe_path_refuses_a_symlink_leading_outside_the_root(tmp_path: Path) -> None:
    """A symlink placed inside local storage that points outside it is refused."""
    root = tmp_path / "storage"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("not radops'")
    (root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(LocalStorageError, match="symlink"):
        safe_path(root, "link/secret.txt")
    (root / "file-link").symlink_to(outside / "secret.txt")
    with pytest.raises(LocalStorageError, match="leads outside"):
        safe_path(root, "file-link")


def test_safe_path_accepts_a_symlink_that_stays_inside_the_root(tmp_path: Path) -> None:
    """A symlink under the root that resolves inside the root is harmless and allowed."""
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real", target_is_directory=True)
    assert safe_path(tmp_path, "alias/x") == tmp_path / "alias" / "x"


def test_reading_through_a_symlink_in_local_storage_is_refused(tmp_path: Path) -> None:
    """A lake whose local storage holds a symlink to elsewhere never serves that file."""
    lake = DataLake(
        Settings.load(env={}, home=tmp_path / "home", remote=str(tmp_path / "remote"), email="e@x")
    )
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "data.txt").write_text("outside")
    lake.settings.storage_dir.mkdir(parents=True)
    (lake.settings.storage_dir / "folder").symlink_to(outside, target_is_directory=True)
    try:
        with (
            pytest.raises(LocalStorageError, match="leads outside"),
            File("folder/data.txt", lake=lake).open("r"),
        ):
            pass
    finally:
        lake.local.close()


def test_during_a_bulk_transfer_a_symlink_is_refused_as_before(tmp_path: Path) -> None:
    """In a batch, a folder resolved once is not resolved again for each of its files; a
    file there that is a symlink leading outside is still refused, and a folder never seen
    in the batch is resolved in full."""
    lake = DataLake(
        Settings.load(env={}, home=tmp_path / "home", remote=str(tmp_path / "remote"), email="e@x")
    )
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "data.txt").write_text("outside")
    storage = lake.settings.storage_dir
    (storage / "bulk").mkdir(parents=True)
    (storage / "elsewhere").symlink_to(outside, target_is_directory=True)
    try:
        with lake.local.batched():
            assert lake.local.path("bulk/a.bin") == storage / "bulk" / "a.bin"
            (storage / "bulk" / "b.bin").symlink_to(outside / "data.txt")
            assert lake.local.path("bulk/c.bin") == storage / "bulk" / "c.bin"
            with pytest.raises(LocalStorageError, match="leads outside"):
                lake.local.path("bulk/b.bin")
            with pytest.raises(LocalStorageError, match="leads outside"):
                lake.local.path("elsewhere/data.txt")
    finally:
        lake.local.close()


# -- properties over arbitrary text --------------------------------------------------------

# Text biased towards the characters that make uids dangerous: separators, dots, reserved names.
_PIECES = st.sampled_from(["/", ".", "..", "\\", "#", ".radops", "\x00", "\n", "~", "a", "é"])
_TEXT = st.one_of(
    st.text(max_size=40),
    st.lists(st.one_of(_PIECES, st.text(max_size=5)), max_size=12).map("".join),
    st.lists(
        st.text(
            st.characters(blacklist_characters="/", blacklist_categories=("Cs",)), max_size=300
        ),
        min_size=1,
        max_size=5,
    ).map("/".join),
)


def _is_valid(uid: str) -> bool:
    try:
        validate_uid(uid)
    except InvalidUidError:
        return False
    return True


def _files(root: Path) -> list[Path]:
    """Every file under ``root``, except the lake's own records under ``.radops``."""
    return [
        path
        for path in root.rglob("*")
        if path.is_file() and path.relative_to(root).parts[0] != ".radops"
    ]


def _inside(path: Path, root: Path) -> bool:
    real, real_root = os.path.realpath(path), os.path.realpath(root)
    return real.startswith(real_root + os.sep)


@settings(max_examples=200, deadline=None)
@given(uid=_TEXT)
def test_any_text_is_either_refused_or_stays_inside_the_root(uid: str) -> None:
    """For any text, validate_uid refuses it or safe_path resolves strictly inside the root."""
    root = Path(tempfile.gettempdir()) / "radops-uid-property-root"
    try:
        validate_uid(uid)
    except InvalidUidError:
        with pytest.raises(InvalidUidError):
            safe_path(root, uid)
        return
    assert _inside(safe_path(root, uid), root)


@settings(max_examples=30, deadline=None)
@given(uid=_TEXT.filter(_is_valid))
def test_writing_any_valid_uid_stays_inside_storage_and_the_lake(
    uid: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A File written and read under any valid uid lands in local storage and the lake only."""
    base = tmp_path_factory.mktemp("uid-io")
    home, remote = base / "home", base / "remote"
    lake = DataLake(Settings.load(env={}, home=home, remote=str(remote), email="e@x"))
    try:
        with File(uid, lake=lake).open("wb") as handle:
            handle.write(uid.encode("utf-8"))
        with File(uid, lake=lake).open("rb") as handle:
            assert handle.read() == uid.encode("utf-8")
        assert sorted(p.name for p in base.iterdir()) == ["home", "remote"]
        assert _inside(lake.local.path(uid), lake.settings.storage_dir)
        assert (lake.settings.storage_dir / uid).read_bytes() == uid.encode("utf-8")
        assert (remote / uid).read_bytes() == uid.encode("utf-8")
        assert _files(remote) == [remote / uid]
        assert _files(lake.settings.storage_dir) == [lake.settings.storage_dir / uid]
    finally:
        lake.local.close()


def test_a_symlink_in_a_directory_lake_never_leads_writes_outside(tmp_path: Path) -> None:
    """A folder of the lake that is a symlink to elsewhere is refused, nothing is written there."""
    from radops.data_lake import DataLake
    from radops.errors import LocalStorageError
    from radops.settings import Settings

    outside = tmp_path / "outside"
    outside.mkdir()
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "shared").symlink_to(outside)
    lake = DataLake(
        Settings.load(env={}, home=tmp_path / "home", remote=remote, email="t@example.com")
    )
    with (
        pytest.raises(LocalStorageError, match="symlink"),
        File("shared/x.txt", lake=lake).open("w") as handle,
    ):
        handle.write("escape")
    assert list(outside.iterdir()) == []
    lake.local.close()
