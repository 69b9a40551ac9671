"""Settings: one frozen object, resolved once at the entry point and passed down.

Precedence, highest first: explicit arguments > ``RADOPS_*`` environment variables >
``$RADOPS_HOME/config.toml`` > defaults. This module is the only place that looks at the
environment, and only when :meth:`Settings.load` is called; nothing in radops writes it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from radops.errors import ConfigError
from radops.redact import redact_url

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "SETTABLE_NAMES",
    "SETTING_NAMES",
    "Settings",
    "config_file",
    "parse_size",
    "unset_config_value",
    "write_config_value",
]

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
    "ti": 1024**4,
    "tib": 1024**4,
}


def parse_size(text: str | int) -> int:
    """Parse a byte count such as ``1048576``, ``500MB`` or ``2GiB``.

    Raises:
        ValueError: the text is not a non-negative size.
    """
    # config.toml can hold any TOML type: a float, list or bool must be a ValueError (hence a
    # ConfigError naming the setting), not a TypeError from re, nor True read as 1 byte.
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise ValueError(f"not a size: {text!r} (examples: 1000000, 500MB, 2GiB)")  # noqa: TRY004
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"a size cannot be negative: {text}")
        return text
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"not a size: {text!r} (examples: 1000000, 500MB, 2GiB)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def _optional_str(value: Any) -> str | None:
    text = str(value).strip()
    return text or None


def _optional_http_url(value: Any) -> str | None:
    """An http(s) URL with a host (and a numeric port, if any), or None.

    Checked when settings load, so that a malformed URL is one clear error naming the setting
    rather than a failure deep in a request, whose message may repeat the URL, password and
    all; this message shows it redacted.
    """
    from urllib.parse import urlsplit

    text = _optional_str(value)
    if text is None:
        return None
    parts = urlsplit(text)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or not port_ok:
        raise ValueError(
            f"not an http(s) URL with a host: {redact_url(text)!r} "
            "(like https://marquez.example.org:5000)"
        )
    return text


def _optional_size(value: Any) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return parse_size(value)


def _namespace(value: Any) -> str:
    from radops.lineage.naming import check_namespace

    # Checked here, once: Marquez would silently rename a namespace it does not accept, and
    # radops would then ask it about a namespace that does not exist.
    return check_namespace(str(value).strip())


def _seconds(value: Any) -> float:
    # float() would say "could not convert string to float: 'abc'": Python's words, not ours.
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"not a number of seconds: {value!r} (like 5 or 2.5)") from None
    if not seconds > 0:
        raise ValueError(f"not a positive number of seconds: {value!r}")
    return seconds


def _openlineage_configured(environ: Mapping[str, str], base: Path) -> str | None:
    """Where openlineage-python would find its own transport configuration, if anywhere."""
    if environ.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true":
        return None
    if environ.get("OPENLINEAGE_CONFIG"):
        return "env OPENLINEAGE_CONFIG"
    if environ.get("OPENLINEAGE_URL"):
        return "env OPENLINEAGE_URL"
    if any(name.startswith("OPENLINEAGE__TRANSPORT") for name in environ):
        return "env OPENLINEAGE__TRANSPORT__*"
    home = Path(environ["HOME"]) if environ.get("HOME") else None
    for candidate in (
        base / "openlineage.yml",
        home / ".openlineage" / "openlineage.yml" if home else None,
    ):
        if candidate is not None and candidate.is_file():
            return f"file {candidate}"
    return None


def _threads(value: Any) -> int:
    # int("2.5") would say "invalid literal for int() with base 10": Python's words, not ours.
    try:
        count = int(str(value).strip())
    except ValueError:
        raise ValueError(f"not a whole number of threads: {value!r} (like 10)") from None
    if not 1 <= count <= _MAX_THREADS:
        raise ValueError(f"not a number of threads from 1 to {_MAX_THREADS}: {value!r}")
    return count


# More threads than this only queue on the store's connections and on the GIL.
_MAX_THREADS = 256


def _log_level(value: Any) -> str:
    level = str(value).strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ValueError(f"not a log level: {value!r} (DEBUG, INFO, WARNING, ERROR, CRITICAL)")
    return level


# What each kind of setting may be in config.toml: the TOML types, and how to say it. A value
# of another type is refused on load (``remote = 5`` was a folder "5" in the working directory).
_STRING = ((str,), "a string")
_SECONDS = ((int, float), "a number of seconds (like 5 or 2.5)")
_SIZE = ((int, str), 'a size (a number of bytes, or a string like "500MB")')
_COUNT = ((int,), "a whole number (like 10)")


@attrs.frozen
class _Spec:
    name: str
    parse: Callable[[Any], Any]
    default: Any
    help: str
    toml: tuple[tuple[type, ...], str] = _STRING
    what: str = ""  # what the string holds, for messages: "an e-mail address"

    @property
    def env_var(self) -> str:
        return "RADOPS_" + self.name.upper()

    @property
    def expected(self) -> str:
        """The type config.toml must give, in words: ``a string (an e-mail address)``."""
        return f"{self.toml[1]} ({self.what})" if self.what else self.toml[1]

    def check_type(self, value: Any, path: Path) -> None:
        """Refuse a config.toml value of the wrong TOML type, naming file, key and type."""
        types, _ = self.toml
        # bool is an int in Python, never a number or a size in config.toml.
        if isinstance(value, types) and not isinstance(value, bool):
            return
        raise ConfigError(
            f"invalid {self.name} from {path}: expected {self.expected}, got "
            f"{_toml_type(value)}; {_fix_hint(self.name)}"
        )


def _toml_type(value: Any) -> str:
    """How TOML calls the type of a value read from a file, with the value when it is short."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the float {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"a date or time ({value})"


def _fix_hint(name: str) -> str:
    return f"fix it with `radops config set {name} VALUE`, or in an editor"


# Settings that may come from arguments, the environment or config.toml. `home` is not here:
# config.toml lives inside it, so it can only come from an argument or RADOPS_HOME.
_SPECS: tuple[_Spec, ...] = (
    _Spec(
        "remote",
        _optional_str,
        None,
        "where the lake lives: s3://bucket[/prefix] or a directory (default: $RADOPS_HOME/lake)",
        what="s3://bucket[/prefix] or a directory",
    ),
    _Spec(
        "s3_endpoint_url",
        _optional_http_url,
        None,
        "endpoint of an S3-compatible store (default: boto3's own resolution)",
        what="a URL such as http://127.0.0.1:8333",
    ),
    _Spec(
        "email",
        _optional_str,
        None,
        "originator recorded on created files (default: git config user.email)",
        what="an e-mail address",
    ),
    _Spec(
        "cache_max_bytes",
        _optional_size,
        None,
        "keep local storage under this size by evicting files that are in the lake",
        _SIZE,
    ),
    _Spec(
        "log_level",
        _log_level,
        "INFO",
        "level of radops' log messages on stderr",
        what="DEBUG, INFO, WARNING, ERROR or CRITICAL",
    ),
    _Spec("namespace", _namespace, "radops", "OpenLineage namespace of radops' jobs"),
    _Spec(
        "marquez_url",
        _optional_http_url,
        None,
        "Marquez (or any OpenLineage HTTP endpoint) that receives every event",
        what="a URL",
    ),
    _Spec(
        "lineage_timeout",
        _seconds,
        5.0,
        "seconds to connect to a lineage consumer, and for Marquez to answer a lineage query",
        _SECONDS,
    ),
    _Spec(
        "download_max_bytes",
        parse_size,
        10 * 1024**3,
        "largest body `datalake add URL` downloads before giving up",
        _SIZE,
    ),
    _Spec(
        "download_timeout",
        _seconds,
        60.0,
        "seconds `datalake add URL` waits to connect or for the next bytes",
        _SECONDS,
    ),
    _Spec(
        "stale_after",
        _seconds,
        600.0,
        "seconds after which another machine's unfinished creation counts as abandoned",
        _SECONDS,
    ),
    _Spec(
        "transfer_threads",
        _threads,
        10,
        "files moved at once by `datalake add DIR` and `download PREFIX`, and parts at once "
        "of one large S3 transfer",
        _COUNT,
    ),
)
# Secrets come only from the environment (or an argument): never from or into config.toml,
# and `config show` only says whether they are set.
_SECRETS = {"marquez_api_key": "RADOPS_MARQUEZ_API_KEY"}
SETTING_NAMES: tuple[str, ...] = ("home", *(spec.name for spec in _SPECS))
SETTABLE_NAMES: tuple[str, ...] = tuple(spec.name for spec in _SPECS)
"""The settings config.toml may hold (``radops config set``): all but ``home``."""


def _normalize_remote(remote: str, base: Path) -> str:
    if remote.startswith("s3://"):
        bucket, _, prefix = remote[len("s3://") :].partition("/")
        if not bucket:
            raise ConfigError(f"RADOPS_REMOTE {remote!r} names no bucket (s3://bucket/prefix)")
        prefix = prefix.strip("/")
        return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    if "://" in remote and not remote.startswith("file://"):
        raise ConfigError(  # a URL given here may hold a password: never shown
            f"RADOPS_REMOTE {redact_url(remote)!r} is not supported: use s3://bucket[/prefix] "
            "or a directory"
        )
    path = remote.removeprefix("file://")
    return str((base / Path(path).expanduser()).resolve())


@attrs.frozen
class Settings:
    """The effective configuration of radops.

    Create it with :meth:`Settings.load`; ``sources`` says where each value came from.
    """

    home: Path
    remote: str
    s3_endpoint_url: str | None = None
    email: str | None = None
    cache_max_bytes: int | None = None
    log_level: str = "INFO"
    namespace: str = "radops"
    marquez_url: str | None = None
    lineage_timeout: float = 5.0
    download_max_bytes: int = 10 * 1024**3
    download_timeout: float = 60.0
    stale_after: float = 600.0
    transfer_threads: int = 10
    marquez_api_key: str | None = attrs.field(default=None, repr=False)
    openlineage_config: str | None = None
    sources: Mapping[str, str] = attrs.field(factory=dict, eq=False, repr=False)

    @classmethod
    def load(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        cwd: Path | None = None,
        **overrides: Any,
    ) -> Settings:
        """Resolve settings: ``overrides`` > ``RADOPS_*`` in ``env`` > config.toml > defaults.

        ``env`` defaults to the process environment; pass a mapping to resolve settings for
        another machine or a test without touching ``os.environ``.

        Raises:
            ConfigError: an unknown setting, a malformed value, or an unreadable config file.
        """
        environ: Mapping[str, str] = os.environ if env is None else env
        base = cwd or Path.cwd()
        unknown = set(overrides) - set(SETTING_NAMES) - set(_SECRETS)
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")

        sources: dict[str, str] = {}
        home, sources["home"] = _home(environ, base, overrides.get("home"))

        config_path = home / "config.toml"
        file_values = _read_config(config_path)

        values: dict[str, Any] = {}
        for spec in _SPECS:
            if overrides.get(spec.name) is not None:
                raw, source = overrides[spec.name], "argument"
            elif environ.get(spec.env_var, "") != "":
                raw, source = environ[spec.env_var], f"env {spec.env_var}"
            elif spec.name in file_values:
                raw, source = file_values[spec.name], f"config {config_path}"
                spec.check_type(raw, config_path)
            else:
                values[spec.name], sources[spec.name] = spec.default, "default"
                continue
            try:
                values[spec.name] = spec.parse(raw)
            except ValueError as exc:
                where = source.removeprefix("env ").removeprefix("config ")
                hint = f"; {_fix_hint(spec.name)}" if source.startswith("config ") else ""
                raise ConfigError(f"invalid {spec.name} from {where}: {exc}{hint}") from exc
            sources[spec.name] = source

        for name, env_var in _SECRETS.items():
            if overrides.get(name) is not None:
                values[name], sources[name] = overrides[name], "argument"
            elif environ.get(env_var):
                values[name], sources[name] = environ[env_var], f"env {env_var}"
        values["openlineage_config"] = _openlineage_configured(environ, base)

        if values["remote"] is None:
            values["remote"] = str(home / "lake")
        else:
            values["remote"] = _normalize_remote(values["remote"], base)
        return cls(home=home, sources=sources, **values)

    @property
    def storage_dir(self) -> Path:
        """Local storage: one read-only file per cached uid, at ``storage/<uid>``."""
        return self.home / "storage"

    @property
    def state_dir(self) -> Path:
        """radops' own state (the local index, locks)."""
        return self.home / "state"

    @property
    def tmp_dir(self) -> Path:
        """Temporary files, on the same file system as storage so a rename is atomic."""
        return self.home / "tmp"

    @property
    def config_path(self) -> Path:
        """The TOML file ``radops config set`` writes."""
        return self.home / "config.toml"

    def resolve_email(self) -> str:
        """The originator's e-mail: ``RADOPS_EMAIL``, else ``git config user.email``.

        Raises:
            ConfigError: neither is set.
        """
        if self.email:
            return self.email
        email = git_user_email()
        if not email:
            raise ConfigError(
                "no e-mail to record as originator: set RADOPS_EMAIL "
                "(or `radops config set email you@example.com`, or git config user.email)"
            )
        return email

    def describe(self) -> list[tuple[str, str | None, str]]:
        """(name, value, source) of every setting, as ``radops config show`` prints them."""
        rows: list[tuple[str, str | None, str]] = [("home", str(self.home), self.sources["home"])]
        for spec in _SPECS:
            value = getattr(self, spec.name)
            source = self.sources.get(spec.name, "default")
            if spec.name == "remote" and source == "default":
                source = "default ($RADOPS_HOME/lake)"
            if spec.name == "email" and value is None:
                value = git_user_email()
                source = "git config user.email" if value else "not set"
            shown = None if value is None else str(value)
            if shown is not None and "://" in shown and "@" in shown:
                shown = redact_url(shown)  # a password in a URL is still a password
            rows.append((spec.name, shown, source))
        for name in _SECRETS:
            secret = getattr(self, name)
            rows.append(
                (name, "(set, hidden)" if secret else None, self.sources.get(name, "not set"))
            )
        rows.append(
            (
                "openlineage",
                "configured" if self.openlineage_config else None,
                self.openlineage_config or "not configured",
            )
        )
        return rows


def _home(environ: Mapping[str, str], base: Path, given: Any) -> tuple[Path, str]:
    """RADOPS_HOME resolved: an argument, else the variable, else ~/.radops; and its source."""
    if given is not None:
        home, source = Path(given), "argument"
    elif environ.get("RADOPS_HOME"):
        home, source = Path(environ["RADOPS_HOME"]), "env RADOPS_HOME"
    else:
        home, source = Path("~/.radops"), "default"
    return (base / home.expanduser()).resolve(), source


def config_file(env: Mapping[str, str] | None = None, *, cwd: Path | None = None) -> Path:
    """``$RADOPS_HOME/config.toml``, reading nothing but ``RADOPS_HOME``.

    What ``radops config set`` changes: it must work while another setting is invalid, since
    it is how one fixes that setting.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    home, _ = _home(environ, cwd or Path.cwd(), None)
    return home / "config.toml"


def git_user_email() -> str | None:
    """``git config user.email``, or None when git or the setting is missing."""
    try:
        result = subprocess.run(
            ["git", "config", "user.email"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None


def _read_config(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data: dict[str, Any] = tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        # radops cannot rewrite a file it cannot read without losing what it holds: say how
        # to get out, since `config set` refuses too.
        raise ConfigError(
            f"{path} is not valid TOML ({exc}): fix it in an editor (one `key = value` line "
            f'per setting, strings in quotes: remote = "s3://bucket/lake"), or remove it '
            f"(rm {path}) and set the values again with `radops config set KEY VALUE`"
        ) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    unknown = set(data) - {spec.name for spec in _SPECS}
    if unknown:
        raise ConfigError(
            f"unknown setting(s) in {path}: {', '.join(sorted(unknown))} "
            f"(known: {', '.join(spec.name for spec in _SPECS)}); remove that line "
            "in an editor"
        )
    return data


def write_config_value(settings: Settings | Path, key: str, value: str) -> Path:
    """Validate ``value`` and store it as ``key`` in ``$RADOPS_HOME/config.toml``.

    ``settings``: the settings whose config file to change, or the file itself (see
    :func:`config_file`). An empty value removes the key (see :func:`unset_config_value`).
    The file is replaced atomically and is owner-only; its other values are kept as they are,
    valid or not, so that one ``config set`` can fix one bad value.

    Raises:
        ConfigError: an unknown key (``home`` included), an invalid value, or a config file
            that is not valid TOML.
    """
    key = _settable(key)
    if value == "":
        path, _ = unset_config_value(settings, key)
        return path
    spec = next(spec for spec in _SPECS if spec.name == key)
    try:
        parsed = spec.parse(value)
    except ValueError as exc:
        raise ConfigError(f"invalid {key}: {exc}") from exc
    if key == "remote":
        parsed = _normalize_remote(parsed, Path.cwd())
    path = _config_path(settings)
    data = _read_config(path)
    data[key] = parsed
    _write_config(path, data)
    return path


def unset_config_value(settings: Settings | Path, key: str) -> tuple[Path, bool]:
    """Remove ``key`` from config.toml; return the file and whether the key was there.

    Raises:
        ConfigError: an unknown key, or a config file that is not valid TOML.
    """
    key = _settable(key)
    path = _config_path(settings)
    data = _read_config(path)
    if key not in data:
        return path, False
    del data[key]
    _write_config(path, data)
    return path, True


def _settable(key: str) -> str:
    key = key.lower().replace("-", "_")
    if key not in SETTABLE_NAMES:
        raise ConfigError(
            f"cannot set {key!r} in config.toml (settable: {', '.join(SETTABLE_NAMES)}; "
            "home comes from RADOPS_HOME)"
        )
    return key


def _config_path(settings: Settings | Path) -> Path:
    return settings if isinstance(settings, Path) else settings.config_path


def _write_config(path: Path, data: dict[str, Any]) -> None:
    import tomli_w

    from radops.private import make_private_dir

    make_private_dir(path.parent)
    tmp = path.with_name(f".config.toml.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        tomli_w.dump(data, handle)
    tmp.replace(path)
