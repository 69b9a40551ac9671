"""Settings: precedence, where each value came from, normalization and errors."""

from __future__ import annotations

import re
import stat
import subprocess
from pathlib import Path

import attrs
import pytest

from radops.errors import ConfigError
from radops.settings import Settings, parse_size, write_config_value


def _write_config(home: Path, text: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_when_nothing_is_configured(tmp_path: Path) -> None:
    """With no argument, variable or config file, every setting has its default."""
    settings = Settings.load(env={}, home=tmp_path)
    assert settings.home == tmp_path
    assert settings.remote == str(tmp_path / "lake")
    assert settings.s3_endpoint_url is None
    assert settings.email is None
    assert settings.cache_max_bytes is None
    assert settings.log_level == "INFO"
    assert settings.sources["remote"] == "default"
    assert settings.sources["log_level"] == "default"


def test_default_home_is_dot_radops_in_the_user_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without RADOPS_HOME, home is ~/.radops and the lake defaults to ~/.radops/lake."""
    monkeypatch.setenv("HOME", str(tmp_path))
    settings = Settings.load(env={})
    assert settings.home == tmp_path / ".radops"
    assert settings.remote == str(tmp_path / ".radops" / "lake")
    assert settings.sources["home"] == "default"


def test_home_comes_from_radops_home_and_a_relative_one_is_resolved(tmp_path: Path) -> None:
    """RADOPS_HOME sets home, resolved against the working directory when relative."""
    settings = Settings.load(env={"RADOPS_HOME": "rel/home"}, cwd=tmp_path)
    assert settings.home == tmp_path / "rel" / "home"
    assert settings.sources["home"] == "env RADOPS_HOME"
    assert Settings.load(env={"RADOPS_HOME": "x"}, home=tmp_path).home == tmp_path


def test_arguments_beat_environment_beat_config_file_beat_defaults(tmp_path: Path) -> None:
    """Each setting takes the highest-precedence value given, and reports where it came from."""
    config = _write_config(
        tmp_path,
        'remote = "s3://from-config"\n'
        's3_endpoint_url = "http://config:1"\n'
        'email = "config@example.com"\n'
        'log_level = "ERROR"\n',
    )
    env = {
        "RADOPS_REMOTE": "s3://from-env",
        "RADOPS_S3_ENDPOINT_URL": "http://env:2",
        "RADOPS_CACHE_MAX_BYTES": "1KiB",
    }
    settings = Settings.load(env=env, home=tmp_path, remote="s3://from-argument")
    assert settings.remote == "s3://from-argument"
    assert settings.sources["remote"] == "argument"
    assert settings.s3_endpoint_url == "http://env:2"
    assert settings.sources["s3_endpoint_url"] == "env RADOPS_S3_ENDPOINT_URL"
    assert settings.cache_max_bytes == 1024
    assert settings.sources["cache_max_bytes"] == "env RADOPS_CACHE_MAX_BYTES"
    assert settings.email == "config@example.com"
    assert settings.sources["email"] == f"config {config}"
    assert settings.log_level == "ERROR"
    assert settings.sources["log_level"] == f"config {config}"
    assert settings.sources["home"] == "argument"


def test_describe_lists_every_setting_with_its_source(tmp_path: Path) -> None:
    """describe() gives one (name, value, source) row per setting, home first."""
    settings = Settings.load(env={"RADOPS_EMAIL": "e@example.com"}, home=tmp_path)
    rows = {name: (value, source) for name, value, source in settings.describe()}
    assert next(iter(rows)) == "home"
    assert rows["home"] == (str(tmp_path), "argument")
    assert rows["email"] == ("e@example.com", "env RADOPS_EMAIL")
    assert rows["remote"] == (str(tmp_path / "lake"), "default ($RADOPS_HOME/lake)")
    assert rows["cache_max_bytes"] == (None, "default")


def test_an_empty_variable_counts_as_unset(tmp_path: Path) -> None:
    """RADOPS_REMOTE="" falls through to the config file rather than meaning 'no remote'."""
    _write_config(tmp_path, 'remote = "s3://from-config"\n')
    settings = Settings.load(env={"RADOPS_REMOTE": ""}, home=tmp_path)
    assert settings.remote == "s3://from-config"


def test_a_none_argument_counts_as_not_given(tmp_path: Path) -> None:
    """An argument of None lets the environment decide, as an omitted option would."""
    settings = Settings.load(env={"RADOPS_LOG_LEVEL": "debug"}, home=tmp_path, log_level=None)
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("s3://bucket/prefix/", "s3://bucket/prefix"),
        ("s3://bucket//deep/prefix//", "s3://bucket/deep/prefix"),
        ("s3://bucket", "s3://bucket"),
        ("s3://bucket/", "s3://bucket"),
        ("file:///srv/lake", "/srv/lake"),
        ("/srv/lake/", "/srv/lake"),
        ("/srv/a/../lake", "/srv/lake"),
    ],
)
def test_remote_is_normalized(tmp_path: Path, given: str, expected: str) -> None:
    """Remotes are stored in one canonical form, so equal lakes compare equal."""
    assert Settings.load(env={}, home=tmp_path, remote=given).remote == expected


def test_a_relative_directory_remote_is_resolved_against_the_working_directory(
    tmp_path: Path,
) -> None:
    """A relative directory remote becomes absolute, so it does not move with the cwd."""
    settings = Settings.load(env={"RADOPS_REMOTE": "shared/lake"}, home=tmp_path, cwd=tmp_path)
    assert settings.remote == str(tmp_path / "shared" / "lake")


@pytest.mark.parametrize(
    ("remote", "why"),
    [
        ("s3://", "names no bucket"),
        ("s3:///prefix", "names no bucket"),
        ("http://example.com/lake", "not supported"),
        ("gs://bucket", "not supported"),
    ],
)
def test_unusable_remotes_are_refused(tmp_path: Path, remote: str, why: str) -> None:
    """A remote radops cannot use raises ConfigError naming RADOPS_REMOTE and the reason."""
    with pytest.raises(ConfigError, match=f"RADOPS_REMOTE .*{why}"):
        Settings.load(env={"RADOPS_REMOTE": remote}, home=tmp_path)


@pytest.mark.parametrize(
    ("variable", "value", "why"),
    [
        ("RADOPS_CACHE_MAX_BYTES", "lots", "not a size"),
        ("RADOPS_CACHE_MAX_BYTES", "-5", "not a size"),
        ("RADOPS_CACHE_MAX_BYTES", "10 parsecs", "not a size"),
        ("RADOPS_LOG_LEVEL", "LOUD", "not a log level"),
    ],
)
def test_bad_environment_values_name_the_variable(
    tmp_path: Path, variable: str, value: str, why: str
) -> None:
    """A malformed RADOPS_* value raises ConfigError naming the variable and the problem."""
    with pytest.raises(ConfigError, match=f"from {variable}: {why}"):
        Settings.load(env={variable: value}, home=tmp_path)


@pytest.mark.parametrize(
    "line",
    [
        'cache_max_bytes = "huge"',
        "cache_max_bytes = 1.5",
        "cache_max_bytes = true",
        "cache_max_bytes = [1]",
        "cache_max_bytes = -1",
        'log_level = "chatty"',
    ],
)
def test_bad_config_file_values_name_the_setting_and_the_file(tmp_path: Path, line: str) -> None:
    """A malformed value in config.toml raises ConfigError naming the setting and the file."""
    config = _write_config(tmp_path, line + "\n")
    name = line.split(" ")[0]
    with pytest.raises(ConfigError, match=f"invalid {name} from {re.escape(str(config))}"):
        Settings.load(env={}, home=tmp_path)


def test_a_bad_argument_raises_config_error(tmp_path: Path) -> None:
    """A malformed explicit argument is a ConfigError too, saying it came from an argument."""
    with pytest.raises(ConfigError, match="invalid cache_max_bytes from argument"):
        Settings.load(env={}, home=tmp_path, cache_max_bytes="many")


def test_an_unknown_argument_is_refused(tmp_path: Path) -> None:
    """Settings.load refuses a keyword it does not know, naming it."""
    with pytest.raises(ConfigError, match=r"unknown setting.*remtoe"):
        Settings.load(env={}, home=tmp_path, remtoe="s3://typo")


def test_an_unknown_key_in_the_config_file_is_refused(tmp_path: Path) -> None:
    """A key radops does not know in config.toml raises ConfigError listing the known ones."""
    config = _write_config(tmp_path, 'remote = "/x"\nremtoe = "/typo"\n')
    with pytest.raises(
        ConfigError, match=rf"unknown setting.* in {re.escape(str(config))}: remtoe .*known: remote"
    ):
        Settings.load(env={}, home=tmp_path)


def test_home_cannot_be_set_in_the_config_file(tmp_path: Path) -> None:
    """home is not a config.toml key: the file lives inside home."""
    _write_config(tmp_path, 'home = "/elsewhere"\n')
    with pytest.raises(ConfigError, match=r"unknown setting.*home"):
        Settings.load(env={}, home=tmp_path)


def test_a_malformed_config_file_is_a_config_error_saying_how_to_fix_it(tmp_path: Path) -> None:
    """A config.toml that is not valid TOML raises ConfigError naming the file, the line, and
    the two ways out: fix it in an editor, or remove it and set the values again."""
    config = _write_config(tmp_path, 'email = "me@example.com"\nremote = \n')
    with pytest.raises(ConfigError) as raised:
        Settings.load(env={}, home=tmp_path)
    message = str(raised.value)
    assert f"{config} is not valid TOML" in message
    assert "line 2" in message
    assert "fix it in an editor" in message
    assert f"rm {config}" in message
    assert "radops config set" in message


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "remote = 5",
            "expected a string (s3://bucket[/prefix] or a directory), got the integer 5",
        ),
        (
            'lineage_timeout = "abc"',
            "expected a number of seconds (like 5 or 2.5), got the string 'abc'",
        ),
        (
            "stale_after = true",
            "expected a number of seconds (like 5 or 2.5), got the boolean true",
        ),
        ("email = 3.5", "expected a string (an e-mail address), got the float 3.5"),
        (
            "log_level = [1]",
            "expected a string (DEBUG, INFO, WARNING, ERROR or CRITICAL), got an array",
        ),
        (
            "cache_max_bytes = 1.5",
            'expected a size (a number of bytes, or a string like "500MB"), got the float 1.5',
        ),
    ],
)
def test_a_config_value_of_the_wrong_type_is_refused_naming_file_key_and_type(
    tmp_path: Path, line: str, expected: str
) -> None:
    """``remote = 5`` is not a folder named 5: each setting has a TOML type, checked on load."""
    config = _write_config(tmp_path, line + "\n")
    name = line.split(" ")[0]
    with pytest.raises(ConfigError) as raised:
        Settings.load(env={}, home=tmp_path, cwd=tmp_path)
    message = str(raised.value)
    assert message.startswith(f"invalid {name} from {config}: {expected}"), message
    assert f"radops config set {name} VALUE" in message


@pytest.mark.parametrize("variable", ["RADOPS_LINEAGE_TIMEOUT", "RADOPS_STALE_AFTER"])
def test_a_bad_number_of_seconds_is_reported_in_radops_words(tmp_path: Path, variable: str) -> None:
    """Not Python's 'could not convert string to float', but what a number of seconds is."""
    with pytest.raises(ConfigError) as raised:
        Settings.load(env={variable: "abc"}, home=tmp_path)
    message = str(raised.value)
    assert "could not convert" not in message
    assert f"from {variable}: not a number of seconds: 'abc' (like 5 or 2.5)" in message


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1048576", 1048576),
        (" 500MB ", 500_000_000),
        ("2GiB", 2 * 1024**3),
        ("1.5k", 1500),
        ("0", 0),
        ("3tb", 3 * 1000**4),
        (7, 7),
    ],
)
def test_sizes_accept_decimal_and_binary_units(text: str | int, size: int) -> None:
    """parse_size reads plain byte counts and k/M/G/T units, decimal or binary (KiB...)."""
    assert parse_size(text) == size


def test_write_config_value_round_trips_and_is_owner_only(tmp_path: Path) -> None:
    """Values written with write_config_value are read back from config.toml, mode 0600."""
    home = tmp_path / "home"
    settings = Settings.load(env={}, home=home)
    write_config_value(settings, "remote", "s3://bucket/prefix/")
    write_config_value(settings, "cache-max-bytes", "2GiB")
    path = write_config_value(settings, "EMAIL", "me@example.com")
    assert path == home / "config.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = Settings.load(env={}, home=home)
    assert loaded.remote == "s3://bucket/prefix"
    assert loaded.cache_max_bytes == 2 * 1024**3
    assert loaded.email == "me@example.com"
    assert loaded.sources["email"] == f"config {path}"
    assert not list(home.glob(".config.toml.*"))


def test_write_config_value_with_an_empty_value_removes_the_key(tmp_path: Path) -> None:
    """Setting a key to '' removes it, so its default applies again."""
    settings = Settings.load(env={}, home=tmp_path)
    write_config_value(settings, "log_level", "debug")
    assert Settings.load(env={}, home=tmp_path).log_level == "DEBUG"
    write_config_value(settings, "log_level", "")
    assert Settings.load(env={}, home=tmp_path).log_level == "INFO"


def test_write_config_value_resolves_a_relative_remote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative directory remote is stored absolute, as it was meant when it was set."""
    monkeypatch.chdir(tmp_path)
    settings = Settings.load(env={}, home=tmp_path / "home")
    write_config_value(settings, "remote", "shared")
    monkeypatch.chdir("/")
    assert Settings.load(env={}, home=tmp_path / "home").remote == str(tmp_path / "shared")


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("home", "/x", "cannot set 'home'"),
        ("colour", "blue", "cannot set 'colour'"),
        ("cache_max_bytes", "big", "invalid cache_max_bytes: not a size"),
        ("log_level", "shout", "invalid log_level"),
        ("remote", "ftp://x", "not supported"),
    ],
)
def test_write_config_value_refuses_bad_keys_and_values(
    tmp_path: Path, key: str, value: str, why: str
) -> None:
    """An unknown key or an invalid value raises ConfigError and leaves no config file."""
    settings = Settings.load(env={}, home=tmp_path)
    with pytest.raises(ConfigError, match=why):
        write_config_value(settings, key, value)
    assert not (tmp_path / "config.toml").exists()


def test_settings_are_frozen(tmp_path: Path) -> None:
    """A Settings object cannot be changed once loaded."""
    settings = Settings.load(env={}, home=tmp_path)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        settings.remote = "/elsewhere"  # type: ignore[misc]


def test_load_does_not_read_the_process_environment_when_given_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Settings.load(env=...) ignores os.environ; without env it reads os.environ."""
    monkeypatch.setenv("RADOPS_EMAIL", "process@example.com")
    assert Settings.load(env={}, home=tmp_path).email is None
    assert Settings.load(home=tmp_path).email == "process@example.com"


def test_storage_state_and_tmp_live_in_home(tmp_path: Path) -> None:
    """Local storage, state and temp files are all under home, temp beside storage."""
    settings = Settings.load(env={}, home=tmp_path)
    assert settings.storage_dir == tmp_path / "storage"
    assert settings.state_dir == tmp_path / "state"
    assert settings.tmp_dir == tmp_path / "tmp"
    assert settings.config_path == tmp_path / "config.toml"


# -- the originator's e-mail ---------------------------------------------------------------


@pytest.fixture
def git_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A global git config file of our own, no system config, and a cwd outside any repo."""
    config = tmp_path / "gitconfig"
    config.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path))
    cwd = tmp_path / "not-a-repo"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return config


def test_resolve_email_says_to_set_radops_email_when_there_is_none(
    tmp_path: Path, git_config: Path
) -> None:
    """Without RADOPS_EMAIL or git user.email, resolve_email says how to set one."""
    not_a_repo = subprocess.run(
        ["git", "rev-parse", "--git-dir"], capture_output=True, check=False
    ).returncode
    assert not_a_repo != 0
    with pytest.raises(ConfigError, match="set RADOPS_EMAIL"):
        Settings.load(env={}, home=tmp_path).resolve_email()


def test_resolve_email_falls_back_to_git_user_email(tmp_path: Path, git_config: Path) -> None:
    """Without RADOPS_EMAIL, the originator is git's user.email."""
    git_config.write_text("[user]\n\temail = git-user@example.com\n")
    settings = Settings.load(env={}, home=tmp_path)
    assert settings.resolve_email() == "git-user@example.com"
    rows = {name: (value, source) for name, value, source in settings.describe()}
    assert rows["email"] == ("git-user@example.com", "git config user.email")


def test_radops_email_beats_git_user_email(tmp_path: Path, git_config: Path) -> None:
    """RADOPS_EMAIL is preferred to git's user.email."""
    git_config.write_text("[user]\n\temail = git-user@example.com\n")
    settings = Settings.load(env={"RADOPS_EMAIL": "radops@example.com"}, home=tmp_path)
    assert settings.resolve_email() == "radops@example.com"
