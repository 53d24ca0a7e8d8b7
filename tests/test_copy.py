"""`copier copy` makes a complete project for every answer set, and the
project passes its own gates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import (
    DEFAULTS,
    answer_sets,
    effective,
    git,
    interpreter,
    leftover_jinja,
    run,
    run_gates,
    tool_env,
)

ALWAYS = [
    ".copier-answers.yml",
    ".env.example",
    ".gitignore",
    ".pre-commit-config.yaml",
    ".python-version",
    "LICENSE",
    "README.md",
    "alembic.ini",
    "pyproject.toml",
    "uv.lock",
    "app/main.py",
    "app/settings.py",
    "app/items/router.py",
    "app/metrics.py",
    "app/telemetry.py",
    "app/middleware/observability.py",
    "app/middleware/security.py",
    "app/auth.py",
    "app/ratelimit.py",
    "app/clients.py",
    "SECURITY.md",
    ".secrets.baseline",
    ".github/workflows/security.yml",
    "tests/test_auth.py",
    "tests/test_api_fuzz.py",
    "benchmarks/overhead.py",
    "ops/otel-collector.yaml",
    "ops/grafana/service.json",
    "ops/prometheus/alerts.yml",
    "migrations/env.py",
    "tests/conftest.py",
    "Dockerfile",
    ".dockerignore",
    "compose.yaml",
    ".checkov.yaml",
    "deploy/k8s/base/kustomization.yaml",
    "deploy/k8s/overlays/staging/kustomization.yaml",
    "deploy/k8s/overlays/production/kustomization.yaml",
    "deploy/k8s/secret.example.yaml",
    "deploy/policy/kubernetes.rego",
    ".github/workflows/ci.yml",
    "RUNBOOK.md",
    "ARCHITECTURE.md",
]
LICENSE_FIRST_LINE = {
    "MIT": "MIT License",
    "Apache-2.0": "Apache License",
    "LicenseRef-Proprietary": "Copyright (c)",
}


def copy(copie: Any, answers: dict[str, Any]) -> Path:
    result = copie.copy(extra_answers=answers)
    assert result.exception is None, result.exception
    assert result.exit_code == 0
    project: Path = result.project_dir
    return project


def test_copy_renders_the_files_the_answers_call_for(
    copie: Any, answers: dict[str, Any]
) -> None:
    project = copy(copie, answers)
    chosen = effective(answers)

    assert leftover_jinja(project) == []
    for name in ALWAYS:
        assert (project / name).is_file(), name
    assert (project / ".python-version").read_text().strip() == chosen["python_version"]
    assert (
        (project / "LICENSE")
        .read_text()
        .lstrip()
        .startswith(LICENSE_FIRST_LINE[chosen["license"]])
    )
    worker = chosen["broker"] != "none"
    for path in (
        "app/worker/broker.py",
        "app/publications/tasks.py",
        "tests/worker",
        "ops/grafana/worker.json",
        "ops/prometheus/worker-alerts.yml",
    ):
        assert (project / path).exists() is worker, path
    assert ("dramatiq[" in (project / "pyproject.toml").read_text()) is worker
    assert ("WORKER_BROKER_DSN" in (project / ".env.example").read_text()) is worker
    postgres = chosen["production_database"] == "postgresql"
    assert (project / "tests" / "test_postgres.py").exists() is postgres
    pyproject = (project / "pyproject.toml").read_text()
    assert ('"asyncpg>=' in pyproject) is postgres
    assert (
        "postgresql+asyncpg://" in (project / ".env.example").read_text()
    ) is postgres
    flags = chosen["feature_flags"] == "openfeature"
    for path in (
        "app/flags.py",
        "app/items/insights.py",
        "tests/test_flags.py",
        "tests/items/test_insights.py",
    ):
        assert (project / path).exists() is flags, path
    assert ('"openfeature-sdk>=' in pyproject) is flags
    settings = (project / "app" / "settings.py").read_text()
    assert f'= "{chosen["auth"]}"' in settings
    assert f"AUTH_MODE={chosen['auth']}\n" in (project / ".env.example").read_text()
    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert {k: recorded[k] for k in answers} == answers
    assert "_commit" in recorded
    assert "_src_path" in recorded


def test_nothing_secret_is_written_to_the_answers_file(copie: Any) -> None:
    project = copy(copie, {})

    recorded = (project / ".copier-answers.yml").read_text().lower()

    for word in ("secret", "password", "token", "key"):
        assert word not in recorded


def test_settings_carry_the_answers(copie: Any) -> None:
    project = copy(
        copie, {"project_name": 'Say "Hi" API', "description": "Back\\slash"}
    )

    settings = (project / "app" / "settings.py").read_text()

    assert 'SERVICE_NAME = "say-hi-api"' in settings
    assert "title: str = 'Say \"Hi\" API'" in settings
    assert 'description: str = "Back\\\\slash"' in settings


# The copies that also run the service's slow tests, as its CI does (real
# worker processes, Alembic's output through the gates, the benchmarks):
# between them every broker, production database and Python. The others run
# what an owner runs.
SLOW_SUITES = {"default", "py311-postgresql-apache", "py313-sqlite-apache"}


def test_the_slow_suites_cover_every_broker_database_and_python() -> None:
    sets = answer_sets()
    chosen = [effective(sets[name]) for name in SLOW_SUITES]
    every = [effective(answers) for answers in sets.values()]
    assert "default" in SLOW_SUITES  # its copy runs the benchmarks
    for choice in ("broker", "production_database", "python_version"):
        wanted = {answers[choice] for answers in every} - {"none"}
        assert {answers[choice] for answers in chosen} >= wanted, choice


@pytest.mark.slow
@pytest.mark.long
def test_copy_passes_its_own_gates(
    copie: Any, answers: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    project = copy(copie, answers)
    slow = request.node.callspec.params["answers"] in SLOW_SUITES

    # The overhead benchmark runs in the default copy (see run_gates).
    outputs = run_gates(project, answers, slow=slow, benchmark=answers == {})

    assert "Success: no issues found" in outputs["mypy"]


@pytest.mark.slow
def test_pre_commit_hooks_run_offline_from_the_lock(copie: Any) -> None:
    project = copy(copie, {})
    env = tool_env(interpreter(DEFAULTS["python_version"]))
    run(["uv", "sync", "--locked"], project, env).check()
    # The copy is a git repository already: the hooks install at once.
    installed = run(["uv", "run", "--frozen", "pre-commit", "install"], project, env)
    assert installed.returncode == 0, installed.output
    assert (project / ".git" / "hooks" / "pre-commit").is_file()
    hooks = ["uv", "run", "--frozen", "pre-commit", "run", "--all-files"]

    clean = run(hooks, project, env)
    (project / "NOTES.md").write_text(
        "<<<<<<< HEAD\nmine\n=======\ntheirs\n>>>>>>> main\n"
    )
    # The secret the hooks must catch (this repository's own scan lets it be).
    leak = 'PASSWORD = "hunter2-very-secret-Xy9"\n'  # pragma: allowlist secret
    (project / "app" / "leak.py").write_text(leak)
    git(project, "add", "NOTES.md", "app/leak.py")
    conflicted = run(hooks, project, env)

    assert clean.returncode == 0, clean.output
    # The service's one gate command (scripts/gates.py) runs every gate but
    # the tests.
    for hook in ("no merge conflict markers", "gates (scripts/gates.py"):
        assert hook in clean.output
    assert conflicted.returncode != 0
    assert "NOTES.md" in conflicted.output
    # A new secret is refused (the committed baseline is empty).
    assert "Potential secrets about to be committed" in conflicted.output
    assert "app/leak.py" in conflicted.output
