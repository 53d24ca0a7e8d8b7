"""Helpers the template tests share: answer sets, interpreters, services,
and running a generated project's own gates."""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ANSWERS_DIR = ROOT / "tests" / "answers"
RELEASES_FILE = ROOT / "tests" / "releases.yml"
DEFAULTS: dict[str, Any] = {
    "python_version": "3.12",
    "production_database": "postgresql",
    "broker": "redis",
    "auth": "jwt",
    "feature_flags": "none",
    "license": "MIT",
}
# uv's requests at once (its default is 50). Measured here on 2026-12-05, a
# `uv lock` of a service resolving against PyPI took 0.9-1.1 s with 16, and
# 0.8 or 5.8 s (one run in two: some request stalls ~5 s) with 32, 50 or 200.
UV_CONCURRENCY = "16"
POSTGRES = ("127.0.0.1", 5432)
REDIS = ("127.0.0.1", 6379)
# Shared rate limits in the generated tests (keys prefixed per test run).
REDIS_DSN = "redis://127.0.0.1:6379/14"
# Generated projects' worker tests use their own queue names on these, and
# delete them afterwards.
BROKERS = {
    "redis": (("127.0.0.1", 6379), "redis://127.0.0.1:6379/15"),
    "rabbitmq": (
        ("127.0.0.1", 5672),
        "amqp://guest:guest@127.0.0.1:5672/%2F",  # pragma: allowlist secret
    ),
}
# Generated projects' tests create (and drop) their own database on this server.
POSTGRES_DSN = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
REQUIRE_ENV = "PRODSTARTER_REQUIRE_SERVICES"


def answer_sets() -> dict[str, dict[str, Any]]:
    """Every answer set in tests/answers, by file stem."""
    return {
        path.stem: yaml.safe_load(path.read_text()) or {}
        for path in sorted(ANSWERS_DIR.glob("*.yml"))
    }


def effective(answers: Mapping[str, Any]) -> dict[str, Any]:
    return {**DEFAULTS, **answers}


def missing(what: str) -> None:
    """Skip, or fail where the services are promised (CI sets REQUIRE_ENV)."""
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"{what} is required here ({REQUIRE_ENV} is set)")
    pytest.skip(f"{what} is not available")


def reachable(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=1):
            return True
    except OSError:
        return False


PYTHON_VERSIONS = ("3.11", "3.12", "3.13")


def interpreter_dirs() -> list[str]:
    """Folders holding a working interpreter for each supported version."""
    dirs = []
    for version in PYTHON_VERSIONS:
        found = find_interpreter(version)
        if found:
            dirs.append(str(Path(found).parent))
    return dirs


def find_interpreter(version: str) -> str | None:
    candidates = []
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates += sorted(
        glob.glob(f"{pyenv_root}/versions/{version}.*/bin/python{version}")
    )
    candidates += [p for p in [shutil.which(f"python{version}")] if p]
    for candidate in candidates:
        probe = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    return None


def interpreter(version: str) -> str:
    """Path of a Python `version` ("3.12") interpreter, or skip/fail."""
    found = find_interpreter(version)
    if found is None:
        missing(f"Python {version}")
        raise AssertionError("unreachable")
    return found


def tool_env(python: str | None = None, **extra: str) -> dict[str, str]:
    """Environment for uv and copier: this venv's tools first, no downloads."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VIRTUAL_ENV", "DATABASE_", "UV_PROJECT"))
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env.setdefault("UV_CONCURRENT_DOWNLOADS", UV_CONCURRENCY)
    env["NO_COLOR"] = "1"
    # .ci/run keeps this repository free of bytecode; a service's processes
    # (its gates, its tests' servers and workers) would each compile every
    # module they import again (about 3 s each) without it.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if python:
        env["UV_PYTHON"] = python
    env.update(extra)
    return env


def user_env(path: str | None = None, **extra: str) -> dict[str, str]:
    """A new user's shell: no interpreter chosen for uv, which may download
    Pythons (offline here); `path` is where uv finds interpreters, by
    default their PATH (a version manager's shims, uv) without this venv's."""
    env = tool_env(**extra)
    for name in ("UV_PYTHON", "UV_PYTHON_DOWNLOADS"):
        env.pop(name, None)
    if path is None:
        tools = str(Path(sys.executable).parent)
        path = os.pathsep.join(
            entry for entry in env["PATH"].split(os.pathsep) if entry != tools
        )
    env["PATH"] = path
    return env


@dataclass
class Run:
    args: list[str]
    returncode: int
    output: str

    def check(self) -> Run:
        assert self.returncode == 0, f"{' '.join(self.args)} failed:\n{self.output}"
        return self


def run(
    args: list[str], cwd: Path, env: Mapping[str, str], timeout: float = 600
) -> Run:
    result = subprocess.run(
        args,
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(args, result.returncode, result.stdout)


def git(cwd: Path, *args: str) -> str:
    env = tool_env(
        GIT_AUTHOR_NAME="Template Tests",
        GIT_AUTHOR_EMAIL="tests@example.com",
        GIT_COMMITTER_NAME="Template Tests",
        GIT_COMMITTER_EMAIL="tests@example.com",
    )
    return run(["git", *args], cwd, env).check().output


def committed_copy(source: str, ref: str, destination: Path, *options: str) -> Path:
    """`copier copy` of `source` at `ref`, committed as a team keeps it (a
    release before v0.12.0 left no git repository)."""
    run(
        ["copier", "copy", "--trust", "--defaults", *options, "--vcs-ref", ref,
         source, str(destination)],
        destination.parent,
        tool_env(),
    ).check()  # fmt: skip
    git(destination, "init", "--quiet", "--initial-branch=main")
    git(destination, "add", "--all")
    git(destination, "commit", "--quiet", "--allow-empty", "-m", "copy")
    return destination


# Jinja markers; `${{ ... }}` is a GitHub Actions expression, not Jinja.
LEFTOVER = re.compile(r"(?<!\$)\{\{|\{%|%\}")
# Files copied verbatim whose own formats use {{ }}: Grafana legends
# (`{{route}}`) and Prometheus alert annotations (`{{ $labels.job }}`).
GO_TEMPLATED = ("ops/grafana/", "ops/prometheus/")


def leftover_jinja(project: Path) -> list[str]:
    """Files (or names) in the project that still contain Jinja markers."""
    found = []
    for path in project.rglob("*"):
        relative = path.relative_to(project)
        if relative.parts[0] in {".git", ".venv"} or "__pycache__" in relative.parts:
            continue
        if LEFTOVER.search(str(relative)):
            found.append(str(relative))
        elif path.is_file() and not relative.as_posix().startswith(GO_TEMPLATED):
            text = path.read_text(errors="replace")
            if LEFTOVER.search(text):
                found.append(str(relative))
    return found


PASSED = re.compile(r"(\d+) passed")
SKIPPED = re.compile(r"(\d+) skipped")
# scripts/gates.py: a line `== NAME == COMMAND` opens each gate's output.
GATE_HEADER = re.compile(r"^== (\S+) == .*$", re.MULTILINE)
ALL_PASSED = re.compile(r"^gates: all \d+ passed", re.MULTILINE)
GATES = ("lock", "black", "isort", "ruff", "mypy", "bandit", "detect-secrets", "pytest")


def gate_outputs(output: str) -> dict[str, str]:
    """Each gate's output in a run of scripts/gates.py, by gate name."""
    headers = list(GATE_HEADER.finditer(output))
    ends = [header.start() for header in headers[1:]] + [len(output)]
    return {
        header.group(1): output[header.end() : end]
        for header, end in zip(headers, ends, strict=True)
    }


# The overhead benchmark starts servers of its own (~25 s); one copy runs it
# (BENCHMARKED), since no answer changes the path it times. Update tests run
# fewer fuzz examples (10 per operation instead of 30).
BENCHMARK_TESTS = [
    "tests/test_benchmarks.py::test_the_overhead_benchmark_runs_and_reports_every_server",
    "tests/test_benchmarks.py::test_the_layer_breakdown_runs_and_reports_every_layer",
]
UPDATE_FUZZ_EXAMPLES = "10"


def run_gates(
    project: Path,
    answers: Mapping[str, Any],
    *,
    after_update: bool = False,
    benchmark: bool = False,
    slow: bool = False,
    tests: Sequence[str] = (),
) -> dict[str, str]:
    """Run the project's own gates in its own locked environment, with its one
    gate command (scripts/gates.py), as its CI and pre-commit do.

    Returns each gate's output; fails the test when a gate fails.
    `after_update` runs fewer fuzz examples; `slow` runs the service's slow
    tests too, as its CI does (`pytest -m ""`), and `benchmark` its overhead
    benchmark among them; `tests` limits the service's pytest run to those
    paths.
    """
    assert slow or not benchmark, "the benchmarks are slow tests"
    answers = effective(answers)
    env = tool_env(interpreter(answers["python_version"]))
    run(["uv", "sync", "--locked"], project, env).check()
    test_env = dict(env)
    if answers["production_database"] == "postgresql":
        if not reachable(POSTGRES):
            missing("PostgreSQL on 127.0.0.1:5432")
        test_env["DATABASE_DSN"] = POSTGRES_DSN
    if not reachable(REDIS):
        missing("Redis on 127.0.0.1:6379")
    test_env["TEST_REDIS_DSN"] = REDIS_DSN
    broker = answers.get("broker", "none")
    if broker in BROKERS:
        address, dsn = BROKERS[broker]
        if not reachable(address):
            missing(f"{broker} on {address[0]}:{address[1]}")
        test_env["TEST_BROKER_DSN"] = dsn
    extra = [] if benchmark else [f"--deselect={test}" for test in BENCHMARK_TESTS]
    if after_update:
        test_env["FUZZ_MAX_EXAMPLES"] = UPDATE_FUZZ_EXAMPLES
    pytest_run = ["uv", "run", "--frozen", "pytest", "-q", "-p", "no:cacheprovider"]
    if slow:
        extra.extend(["-m", ""])
    # The service's one gate command, as its CI runs it.
    gates = ["uv", "run", "--frozen", "python", "scripts/gates.py"]
    ran = run([*gates, "--", *pytest_run[4:], *extra, *tests], project, test_env)
    outputs = gate_outputs(ran.output)
    assert ran.returncode == 0, ran.output
    assert ALL_PASSED.search(ran.output), ran.output
    assert set(outputs) == set(GATES), ran.output
    assert PASSED.search(outputs["pytest"]), ran.output
    # Every test runs where the services exist: a skip is a gap, not a pass.
    assert not SKIPPED.search(outputs["pytest"]), ran.output
    # The tests on the real servers ran (none skipped) in the run above;
    # count them there.
    real_servers = []
    if answers["production_database"] == "postgresql":
        real_servers.append(("postgres", 10))
    if broker in BROKERS and slow:  # the real worker's tests are slow ones
        real_servers.append(("broker", 5))
    for marker, least in real_servers if not tests else []:
        selected = marker if slow else f"{marker} and not slow"
        listed = run(
            [*pytest_run, *extra, "-m", selected, "--collect-only"], project, test_env
        ).check()
        collected = re.search(r"(\d+)(?:/\d+)? tests? collected", listed.output)
        assert collected, listed.output
        assert int(collected.group(1)) >= least, listed.output
    return outputs
