"""Settings: parsing, grouping, and refusing bad or unsafe values."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from app.own_settings import OwnSettings
from app.settings import DEFAULT_SECRET_KEY, Environment, Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
STRONG_SECRET = secrets.token_urlsafe(48)
OLD_DEFAULT_SECRET = "change-me"  # pragma: allowlist secret
SHORT_SECRET = "short-but-not-default"  # pragma: allowlist secret
PRODUCTION = {
    "ENVIRONMENT": "production",
    "SECRET_KEY": STRONG_SECRET,
    "ALLOWED_HOSTS": "api.example.com,api.internal",
    "AUTH_JWKS_URL": "https://login.example.com/certs",  # used if AUTH_MODE=oidc
    "AUTH_ISSUER": "https://login.example.com/",
    "AUTH_AUDIENCE": "api",
    "DATABASE_DSN": "sqlite+aiosqlite:////data/app.db",
    "WORKER_BROKER_DSN": "redis://redis.internal:6379/0",  # ignored without a worker
}


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """A clean environment with no .env file in reach."""
    for name in list(os.environ):
        if name.split("_", 1)[0] in {
            "ENVIRONMENT", "DEBUG", "SECRET", "DATABASE", "LOG", "CORS", "SERVICE",
            "SERVER", "HEALTH", "DOCS", "WORKER", "ALLOWED", "REDIS", "AUTH",
            "RATELIMIT", "HTTP", "FLAGS", "METRICS", "OTEL",
        }:  # fmt: skip
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_defaults_run_on_the_embedded_database(environ: pytest.MonkeyPatch) -> None:
    settings = load_settings()

    assert settings.environment is Environment.DEVELOPMENT
    assert settings.database.is_embedded
    assert settings.database.url.startswith("sqlite+aiosqlite:///")
    assert settings.database.should_migrate_on_start


def test_groups_read_prefixed_variables(environ: pytest.MonkeyPatch) -> None:
    environ.setenv("DATABASE_DSN", "postgresql+asyncpg://u@db:5432/app")
    environ.setenv("DATABASE_POOL_SIZE", "12")
    environ.setenv("LOG_LEVEL", "DEBUG")
    environ.setenv("CORS_ORIGINS", "https://a.example, https://b.example")

    settings = load_settings()

    assert settings.database.dsn == "postgresql+asyncpg://u@db:5432/app"
    assert settings.database.pool_size == 12
    assert not settings.database.should_migrate_on_start
    assert settings.log.level == "DEBUG"
    assert settings.cors.origins == ["https://a.example", "https://b.example"]


def test_a_dotenv_file_is_read(environ: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("LOG_LEVEL=ERROR\nSERVER_PORT=9000\n")

    settings = load_settings()

    assert (settings.log.level, settings.server.port) == ("ERROR", 9000)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DATABASE_POOL_SIZE", "many", "DATABASE_POOL_SIZE: Input should be a valid integer"),
        ("DATABASE_DSN", "mysql://x", "DATABASE_DSN: must start with postgresql+asyncpg://"),
        ("ENVIRONMENT", "prod", "ENVIRONMENT: Input should be 'development'"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL: Input should be"),
    ],
)  # fmt: skip
def test_a_bad_value_exits_with_one_line_naming_the_variable(
    environ: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    environ.setenv(variable, value)

    with pytest.raises(SystemExit) as exit_info:
        load_settings()

    text = str(exit_info.value.code)
    assert "\n" not in text
    assert text.startswith("invalid settings: ")
    assert message in text


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"DEBUG": "true"}, "DEBUG must be false in production"),
        ({"SECRET_KEY": DEFAULT_SECRET_KEY}, "SECRET_KEY must be set"),
        ({"SECRET_KEY": OLD_DEFAULT_SECRET}, "SECRET_KEY must be set"),
        ({"SECRET_KEY": SHORT_SECRET}, "at least 32 characters"),
        ({"SECRET_KEY": "ab" * 30}, "SECRET_KEY is too weak"),
        ({"CORS_ORIGINS": "*"}, "CORS_ORIGINS must not be '*' in production"),
        ({"DATABASE_DSN": ""}, "DATABASE_DSN must be set in production"),
        ({"ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS must list the host names"),
        ({"ALLOWED_HOSTS": "*"}, "ALLOWED_HOSTS must list the host names"),
        (
            {"AUTH_MODE": "oidc", "AUTH_JWKS_URL": "", "AUTH_ISSUER": ""},
            "AUTH_MODE=oidc needs AUTH_JWKS_URL, AUTH_ISSUER",
        ),
    ],
)
def test_production_refuses_unsafe_values(
    environ: pytest.MonkeyPatch, overrides: dict[str, str], message: str
) -> None:
    for name, value in (PRODUCTION | overrides).items():
        if value:
            environ.setenv(name, value)

    with pytest.raises(SystemExit, match=re.escape(message)):
        load_settings()


@pytest.mark.parametrize("environment", ["staging", "production"])
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"SECRET_KEY": ""}, "SECRET_KEY must be set"),  # a Secret without the key
        ({"SECRET_KEY": "abcdefghij" * 4}, "SECRET_KEY is too weak"),
        ({"SECRET_KEY": "0123456789" * 5}, "SECRET_KEY is too weak"),
        ({"DEBUG": "true"}, "DEBUG must be false in"),
        ({"ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS must list the host names"),
    ],
)
def test_staging_and_production_refuse_guessable_keys_debug_and_any_host(
    environ: pytest.MonkeyPatch,
    environment: str,
    overrides: dict[str, str],
    message: str,
) -> None:
    for name, value in (PRODUCTION | {"ENVIRONMENT": environment} | overrides).items():
        if value:
            environ.setenv(name, value)

    with pytest.raises(SystemExit, match=re.escape(message)) as refused:
        load_settings()

    assert str(refused.value.code).count("\n") == 0  # that one problem


def test_staging_starts_on_its_own_key_and_hosts(environ: pytest.MonkeyPatch) -> None:
    environ.setenv("ENVIRONMENT", "staging")
    environ.setenv("SECRET_KEY", STRONG_SECRET)
    environ.setenv("ALLOWED_HOSTS", "api.staging.example.com")

    settings = load_settings()

    assert settings.is_deployed
    assert not settings.is_production
    assert settings.database.is_embedded  # staging may run on SQLite


def test_every_refusal_is_given_at_once_one_line_each(
    environ: pytest.MonkeyPatch,
) -> None:
    environ.setenv("ENVIRONMENT", "production")
    environ.setenv("DEBUG", "true")

    with pytest.raises(SystemExit) as refused:
        load_settings()

    lines = str(refused.value.code).splitlines()
    expected = ["DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_DSN"]
    if "worker" in Settings.model_fields:
        expected.append("WORKER_BROKER_DSN")
    assert all(line.startswith("invalid settings: ") for line in lines), lines
    for variable in expected:
        assert sum(f" {variable} " in line for line in lines) == 1, (variable, lines)


def test_production_accepts_safe_values(environ: pytest.MonkeyPatch) -> None:
    for name, value in PRODUCTION.items():
        environ.setenv(name, value)

    settings = load_settings()

    assert settings.is_production
    assert settings.log_json
    assert settings.allowed_hosts == ["api.example.com", "api.internal"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"AUTH_ALGORITHMS": "RS256,HS256"}, "AUTH_ALGORITHMS: must be a list of"),
        ({"AUTH_ALGORITHMS": "none"}, "AUTH_ALGORITHMS: must be a list of"),
        ({"RATELIMIT_WRITE": "often"}, "RATELIMIT_WRITE: 'often' is not a rate limit"),
        ({"REDIS_DSN": "http://cache:6379"}, "REDIS_DSN: must start with redis://"),
        ({"HTTP_MAX_BODY_SIZE": "10"}, "HTTP_MAX_BODY_SIZE:"),
    ],
)
def test_security_settings_are_checked_in_every_environment(
    environ: pytest.MonkeyPatch, overrides: dict[str, str], message: str
) -> None:
    for name, value in overrides.items():
        environ.setenv(name, value)

    with pytest.raises(SystemExit, match=re.escape(message)) as refused:
        load_settings()

    assert "\n" not in str(refused.value)


def test_wildcard_cors_with_credentials_is_refused() -> None:
    with pytest.raises(ValueError, match="allow_credentials"):
        Settings(_env_file=None, cors={"origins": "*", "allow_credentials": True})


def test_the_server_exits_with_one_line_on_a_bad_setting(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE")}
    env["DATABASE_POOL_SIZE"] = "-1"

    result = subprocess.run(
        [sys.executable, "-m", "app", "serve"],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "invalid settings: DATABASE_POOL_SIZE: Input should be greater than or equal to 1"
    ]


def test_a_renamed_variable_still_works_for_one_release(
    environ: pytest.MonkeyPatch,
) -> None:
    environ.setenv("SERVER_FORWARDED_ALLOW_IPS", "10.0.0.1,10.0.0.2")

    settings = load_settings()

    assert settings.server.trusted_proxies == "10.0.0.1,10.0.0.2"
    assert settings.deprecations == (
        ("SERVER_FORWARDED_ALLOW_IPS", "SERVER_TRUSTED_PROXIES"),
    )


def test_the_new_name_wins_over_the_old_one(environ: pytest.MonkeyPatch) -> None:
    environ.setenv("SERVER_FORWARDED_ALLOW_IPS", "10.0.0.1")
    environ.setenv("SERVER_TRUSTED_PROXIES", "10.9.9.9")

    assert load_settings().server.trusted_proxies == "10.9.9.9"


def template_variables() -> list[str]:
    """The environment variable of every setting the template declares (an
    owner's own groups, in app/own_settings.py, are theirs to document)."""
    names: list[str] = []
    for name, field in Settings.model_fields.items():
        if name in OwnSettings.model_fields or field.exclude:
            continue
        group = field.annotation
        if isinstance(group, type) and issubclass(group, BaseModel):
            names.extend(f"{name}_{part}".upper() for part in group.model_fields)
        else:
            names.append(name.upper())
    return names


def test_every_setting_is_in_env_example_and_the_readme_table() -> None:
    example = (ROOT / ".env.example").read_text()
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Settings") :].split("\n## ", 1)[0]
    variables = template_variables()

    assert len(variables) > 40  # the groups were found
    assert [v for v in variables if not re.search(rf"\b{v}\b", example)] == []
    assert [v for v in variables if f"`{v}`" not in table] == []
    listed = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", table))
    assert listed - set(variables) == set(), "the table names a setting that is gone"
