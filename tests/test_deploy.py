"""The deployment files: the compose stack, its .env, the deployment guide, the catalog recipes.

No container is started (the machine these were written on has no Docker engine): the files are
parsed and checked against each other, against the variables radops and boto3 really read, and
against openlineage-python, which builds a transport from every documented recipe.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
import yaml
from botocore.configprovider import BOTOCORE_DEFAUT_SESSION_VARIABLES
from botocore.credentials import EnvProvider
from openlineage.client import OpenLineageClient
from openlineage.client.transport import get_default_factory
from openlineage.client.transport.console import ConsoleConfig, ConsoleTransport

from radops.lineage.delivery import transport_from_settings
from radops.settings import _SECRETS, _SPECS, Settings
from tests.marquez_server import marquez_version

ROOT = Path(__file__).parents[1]
DEPLOY = ROOT / "deploy"
CATALOGS = ROOT / "docs" / "catalogs.md"

API, WEB, DB, S3 = "marquez-api", "marquez-web", "marquez-db", "s3"
CREDENTIAL = re.compile(r"PASSWORD|SECRET|ACCESS_KEY|TOKEN|API_KEY")
# ${VAR}, ${VAR:-default}, ${VAR:?error}, but not $${VAR}, which compose leaves to the container.
COMPOSE_VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")
REQUIRED_VARIABLE = re.compile(r"\$\{[A-Z][A-Z0-9_]*:\?[^}]+\}")
PORT = re.compile(r"(?:(?:\$\{[^}]+\}|[0-9.]+):)?(?P<host>\d+):(?P<container>\d+)")


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return data


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {name: str(value) for name, value in env.items()}


def published(service: dict[str, Any]) -> set[tuple[int, int]]:
    ports = set()
    for spec in service.get("ports", []):
        match = PORT.fullmatch(str(spec))
        assert match, f"unparsed port {spec!r}"
        ports.add((int(match["host"]), int(match["container"])))
    return ports


def env_example() -> dict[str, str]:
    values = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"not NAME=value: {line!r}"
            values[name.strip()] = value.strip()
    return values


def fenced(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def exports(block: str, *, commented: bool = False) -> list[tuple[str, str]]:
    found = []
    for line in block.splitlines():
        stripped = line.strip()
        if commented and stripped.startswith("#"):
            stripped = stripped.lstrip("#").strip()
        if stripped.startswith("export "):
            name, _, value = shlex.split(stripped, comments=True)[1].partition("=")
            found.append((name, value))
    return found


def radops_variables() -> set[str]:
    """The RADOPS_* variables radops.settings reads: one per setting, plus the secrets."""
    assert _SPECS and _SECRETS
    return {spec.env_var for spec in _SPECS} | set(_SECRETS.values())


def boto3_variables() -> set[str]:
    """The AWS_* variables botocore reads: credentials and session configuration."""
    names = {EnvProvider.ACCESS_KEY, EnvProvider.SECRET_KEY, *EnvProvider.TOKENS}
    for _, env, *_ in BOTOCORE_DEFAUT_SESSION_VARIABLES.values():
        names.update([env] if isinstance(env, str) else env or [])
    return {name for name in names if name.startswith("AWS_")}


def recipes() -> dict[str, tuple[dict[str, Any], str]]:
    """Each section of docs/catalogs.md with an openlineage.yml: its transport and env block."""
    found = {}
    for section in re.split(r"^## ", CATALOGS.read_text(), flags=re.MULTILINE)[1:]:
        title = section.splitlines()[0].strip()
        files = fenced(section, "yaml")
        if files:
            envs = [block for block in fenced(section, "bash") if "OPENLINEAGE__" in block]
            assert len(files) == 1 and len(envs) == 1, title
            config = yaml.safe_load(files[0])
            assert set(config) == {"transport"}, title
            found[title] = (config["transport"], envs[0])
    return found


def build(transport: dict[str, Any]) -> Any:
    return get_default_factory().create(copy.deepcopy(transport))


def normalized(value: Any) -> Any:
    """Keys as openlineage-python matches them from variables: case and underscores aside."""
    if isinstance(value, dict):
        return {key.lower().replace("_", ""): normalized(item) for key, item in value.items()}
    return value


RECIPES = recipes()
BUILDABLE = [title for title, (transport, _) in RECIPES.items() if transport["type"] != "kafka"]


# -- the compose stack ---------------------------------------------------------------------


def test_the_stack_runs_the_marquez_version_the_tests_run() -> None:
    """What users deploy is what the suite proved: the compose file's Marquez images, the deploy
    guide and the Marquez the tests resolve (tests/marquez/pom.xml) name one version."""
    version = marquez_version()
    found = services()
    assert found[API]["image"] == f"marquezproject/marquez:{version}"
    assert found[WEB]["image"] == f"marquezproject/marquez-web:{version}"
    guide = (ROOT / "docs" / "deploy.md").read_text()
    assert f"Marquez {version}" in guide
    assert f"`marquezproject/marquez:{version}`" in guide


def test_the_stack_has_marquez_its_ui_its_database_and_s3_on_the_documented_ports() -> None:
    """The four services exist, from the expected images, publishing just the documented ports."""
    found = services()
    assert set(found) == {API, WEB, DB, S3}
    assert found[API]["image"].startswith("marquezproject/marquez:")
    assert found[WEB]["image"].startswith("marquezproject/marquez-web:")
    assert found[DB]["image"].startswith("postgres:")
    assert found[S3]["image"].startswith("chrislusf/seaweedfs:")
    assert published(found[API]) == {(5000, 5000), (5001, 5001)}
    assert published(found[WEB]) == {(3000, 3000)}
    assert published(found[S3]) == {(8333, 8333)}
    assert published(found[DB]) == set()


def test_every_image_has_a_pinned_version_tag() -> None:
    """No image floats: each names a version tag, never latest."""
    for name, service in services().items():
        repository, sep, tag = service["image"].rpartition(":")
        assert sep and "/" not in tag and repository, f"{name}: {service['image']} has no tag"
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: {tag!r} is not a version"


def test_every_long_running_service_has_a_healthcheck_and_restarts() -> None:
    """Each service runs for good, restarts, and says when it is healthy."""
    for name, service in services().items():
        assert service.get("restart") == "unless-stopped", name
        check = service.get("healthcheck", {})
        assert not check.get("disable") and check.get("test"), f"{name} has no healthcheck"
        assert check["test"][0] in {"CMD", "CMD-SHELL"}, name


def test_marquez_starts_after_its_database_and_the_ui_after_marquez() -> None:
    """depends_on waits for the dependency to be healthy, not merely started."""
    found = services()
    assert found[API]["depends_on"] == {DB: {"condition": "service_healthy"}}
    assert found[WEB]["depends_on"] == {API: {"condition": "service_healthy"}}


def test_the_s3_server_creates_the_lake_bucket_and_is_healthy_only_once_it_exists() -> None:
    """weed mini creates LAKE_BUCKET itself, never implicitly, and its healthcheck lists it."""
    s3 = services()[S3]
    command = s3["command"]
    assert command[0] == "mini"
    assert "-bucket=${LAKE_BUCKET:-radops-lake}" in command
    assert "-s3.autoCreateBucket=false" in command
    assert "-s3.port=8333" in command
    check = " ".join(s3["healthcheck"]["test"])
    assert "http://127.0.0.1:8333/healthz" in check
    assert "/buckets/${LAKE_BUCKET:-radops-lake}/" in check
    assert set(environment(s3)) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def test_no_credential_is_written_in_the_compose_file() -> None:
    """Every password, key or secret is a required ${VAR} reference, filled from .env."""
    text = (DEPLOY / "docker-compose.yml").read_text()
    assert "change-me-" not in text
    checked = 0
    for name, service in services().items():
        for variable, value in environment(service).items():
            if CREDENTIAL.search(variable):
                assert REQUIRED_VARIABLE.fullmatch(value), f"{name}: {variable}={value!r}"
                checked += 1
    assert checked == 4  # the S3 key pair, and the database password for PostgreSQL and Marquez


def test_env_example_defines_every_variable_and_only_placeholder_secrets() -> None:
    """Each ${VAR} of the compose file is in .env.example, whose secrets are change-me values."""
    used = set(COMPOSE_VARIABLE.findall((DEPLOY / "docker-compose.yml").read_text()))
    defined = env_example()
    assert used == set(defined)
    for name, value in defined.items():
        if CREDENTIAL.search(name):
            assert value.startswith("change-me-"), f"{name} must be an obvious placeholder"
    assert ".env" in (DEPLOY / ".gitignore").read_text().split()


def _substituted(value: object, env: dict[str, str]) -> str:
    """``value`` with ``${VAR}`` and ``${VAR:-default}`` replaced as Marquez (Dropwizard) does."""
    return re.sub(
        r"\$\{([A-Z_]+)(?::-([^}]*))?\}",
        lambda m: env.get(m.group(1), m.group(2) if m.group(2) is not None else ""),
        str(value),
    )


def test_marquez_configuration_agrees_with_the_compose_file() -> None:
    """marquez.yml is mounted at MARQUEZ_CONFIG, uses the published ports and takes env secrets."""
    api, web = services()[API], services()[WEB]
    env = environment(api)
    assert f"./marquez.yml:{env['MARQUEZ_CONFIG']}:ro" in api["volumes"]
    text = (DEPLOY / "marquez.yml").read_text()
    config = yaml.safe_load(text)
    app = config["server"]["applicationConnectors"][0]
    admin = config["server"]["adminConnectors"][0]
    app_port = int(_substituted(app["port"], env))
    admin_port = int(_substituted(admin["port"], env))
    assert {(app_port, app_port), (admin_port, admin_port)} == published(api)
    # Inside its container Marquez listens on every interface (the compose file publishes the
    # ports on BIND_ADDRESS); the tests set MARQUEZ_BIND_HOST to loopback.
    everywhere = "0.0.0.0"  # noqa: S104 - in the container, behind the compose file's ports
    assert _substituted(app["bindHost"], env) == _substituted(admin["bindHost"], env) == everywhere
    assert config["db"]["password"] == "${POSTGRES_PASSWORD}"
    assert config["migrateOnStartup"] is True
    assert config["search"]["enabled"] is False
    # Marquez substitutes ${VAR} from its container's environment: what has no default there,
    # the compose file sets.
    settings = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert set(re.findall(r"\$\{([A-Z_]+)\}", settings)) <= set(env)
    assert env["POSTGRES_HOST"] == DB
    assert environment(web)["MARQUEZ_HOST"] == API
    assert int(environment(web)["MARQUEZ_PORT"]) == app_port


# -- the deployment guide (docs/deploy.md) -------------------------------------------------


def test_deploy_guide_exports_only_variables_radops_or_boto3_read() -> None:
    """The guide exports real RADOPS_* settings and boto3 variables, the required ones included."""
    readme = (ROOT / "docs" / "deploy.md").read_text()
    blocks = fenced(readme, "bash")
    named = {name for block in blocks for name, _ in exports(block, commented=True)}
    allowed = radops_variables() | boto3_variables()
    assert named, "the guide exports nothing"
    assert named <= allowed, f"not read by radops or boto3: {sorted(named - allowed)}"
    exported = {name for block in blocks for name, _ in exports(block)}
    assert {
        "RADOPS_REMOTE",
        "RADOPS_S3_ENDPOINT_URL",
        "RADOPS_MARQUEZ_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    } <= exported
    assert "RADOPS_MARQUEZ_API_KEY" in named
    # The values it reads back from deploy/.env exist there.
    assert set(re.findall(r"env_value (\w+)", readme)) <= set(env_example())
    steps = ("cp .env.example .env", "docker compose up -d", "bash examples/walkthrough/run.sh")
    assert all(step in readme for step in steps)


# -- docs/catalogs.md ----------------------------------------------------------------------


def test_catalog_recipes_cover_every_transport_kind() -> None:
    """There are recipes for HTTP catalogs, Kafka, files and several consumers at once."""
    kinds = {transport["type"] for transport, _ in RECIPES.values()}
    assert kinds == {"http", "kafka", "file", "composite"}
    assert {"DataHub", "OpenMetadata", "Kafka", "Files"} <= set(RECIPES)


@pytest.mark.parametrize("title", BUILDABLE)
def test_catalog_recipe_builds_a_transport(title: str) -> None:
    """openlineage-python's factory builds the recipe's transport, of the declared kind."""
    transport, _ = RECIPES[title]
    assert build(transport).kind == transport["type"]


def test_kafka_recipe_is_a_complete_producer_configuration() -> None:
    """The Kafka recipe (confluent-kafka is not installed here) has topic, key and brokers."""
    transport, _ = RECIPES["Kafka"]
    assert transport["type"] == "kafka"
    assert transport["topic"] and transport["messageKey"] and transport["flush"] is True
    assert all(isinstance(value, str) for value in transport["config"].values())
    assert transport["config"]["bootstrap.servers"]


@pytest.mark.parametrize("title", list(RECIPES))
def test_catalog_environment_variables_equal_the_file(
    title: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The OPENLINEAGE__TRANSPORT__* block configures what the recipe's openlineage.yml does."""
    transport, block = RECIPES[title]
    monkeypatch.chdir(tmp_path)
    for name, value in exports(block):
        assert name.startswith("OPENLINEAGE__TRANSPORT__"), name
        monkeypatch.setenv(name, value)
    client = OpenLineageClient(transport=ConsoleTransport(ConsoleConfig()))
    assert normalized(client.config.transport) == normalized(transport)


@pytest.mark.parametrize(
    ("title", "path"),
    [
        ("DataHub", "/openapi/openlineage/api/v1/lineage"),
        ("OpenMetadata", "/api/v1/openlineage/lineage"),
    ],
)
def test_catalog_recipes_post_to_the_catalogs_openlineage_endpoint(title: str, path: str) -> None:
    """The events go to the catalog's OpenLineage path, with the token as a bearer."""
    config, _ = RECIPES[title]
    transport = build(config)
    assert urlsplit(urljoin(transport.url, transport.endpoint)).path == path
    assert transport.config.auth.get_bearer() == f"Bearer {config['auth']['apiKey']}"


def test_composite_recipe_sends_to_marquez_and_datahub_and_fails_when_one_fails() -> None:
    """Both consumers get every event, and a failure keeps the event in radops' outbox."""
    config, _ = RECIPES["Marquez and a catalog at once"]
    transport = build(config)
    assert transport.config.continue_on_failure is False
    targets = {
        child.name: urlsplit(urljoin(child.url, child.endpoint)).path
        for child in transport.transports
    }
    assert targets == {
        "marquez": "/api/v1/lineage",
        "datahub": "/openapi/openlineage/api/v1/lineage",
    }


def test_file_recipe_appends_one_json_line_per_event(tmp_path: Path) -> None:
    """With append, each event radops delivers is one line of the one file."""
    config, _ = RECIPES["Files"]
    transport = build({**config, "log_file_path": str(tmp_path / "events.ndjson")})
    job = {"namespace": "radops", "name": "j"}
    events = [
        {"eventType": event_type, "run": {"runId": "r"}, "job": job}
        for event_type in ("START", "COMPLETE")
    ]
    for event in events:
        transport.emit(event)
    lines = (tmp_path / "events.ndjson").read_text().splitlines()
    assert [json.loads(line) for line in lines] == events


def test_a_file_without_its_token_takes_it_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """As catalogs.md says, OPENLINEAGE__TRANSPORT__AUTH__APIKEY completes an openlineage.yml."""
    config, _ = RECIPES["DataHub"]
    without_token = {**config, "auth": {"type": "api_key"}}
    path = tmp_path / "openlineage.yml"
    path.write_text(yaml.safe_dump({"transport": without_token}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENLINEAGE_CONFIG", str(path))
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__AUTH__APIKEY", "token-from-env")
    transport = OpenLineageClient().transport
    assert transport.config.auth.get_bearer() == "Bearer token-from-env"
    assert transport.url == config["url"]


def test_radops_uses_openlineage_configuration_only_without_marquez_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """transport_from_settings takes openlineage.yml, unless RADOPS_MARQUEZ_URL is set."""
    config, _ = RECIPES["Marquez and a catalog at once"]
    path = tmp_path / "openlineage.yml"
    path.write_text(yaml.safe_dump({"transport": config}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENLINEAGE_CONFIG", str(path))
    env = {"OPENLINEAGE_CONFIG": str(path)}
    settings = Settings.load(env, home=tmp_path / "home")
    assert settings.openlineage_config == "env OPENLINEAGE_CONFIG"
    assert transport_from_settings(settings).kind == "composite"
    marquez = {**env, "RADOPS_MARQUEZ_URL": "http://marquez.example.org:5000"}
    direct = transport_from_settings(Settings.load(marquez, home=tmp_path / "home"))
    assert direct.kind == "http"
    assert urljoin(direct.url, direct.endpoint) == "http://marquez.example.org:5000/api/v1/lineage"
