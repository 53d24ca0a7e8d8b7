"""Fixtures for the template's own tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from plumbum import local

from tests.support import ROOT, UV_CONCURRENCY, answer_sets, interpreter_dirs
from tests.support.template_repo import build_template_repo

ANSWER_SETS = answer_sets()


def pytest_configure(config: pytest.Config) -> None:
    # pytest-copie renders the template found at --template (default: cwd).
    config.option.template = str(ROOT)
    # Copier's task runs `uv lock` in-process: give it this venv's uv and every
    # Python the answer sets may ask for, and never let uv download one.
    path = [str(Path(sys.executable).parent), *interpreter_dirs()]
    extra = {
        "PATH": os.pathsep.join([*path, os.environ.get("PATH", "")]),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_CONCURRENT_DOWNLOADS": os.environ.get(
            "UV_CONCURRENT_DOWNLOADS", UV_CONCURRENCY
        ),
    }
    os.environ.update(extra)
    # Copier runs tasks with plumbum's copy of the environment, taken at import.
    local.env.update(**extra)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest first (stable otherwise): tests that run a generated
    service's whole gates (`long`), then the other slow ones, then the quick
    ones, which fill the end, where one worker would otherwise sit idle
    behind the last long test."""

    def rank(item: pytest.Item) -> int:
        if item.get_closest_marker("long"):
            return 0
        return 1 if item.get_closest_marker("slow") else 2

    items.sort(key=rank)


@pytest.fixture(params=sorted(ANSWER_SETS), ids=str)
def answers(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Each answer set in tests/answers/."""
    chosen: dict[str, Any] = ANSWER_SETS[request.param]
    return chosen


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A git clone of the template: releases tagged, working tree as the next."""
    destination = tmp_path_factory.mktemp("repo") / "template"
    repo, _, next_tag = build_template_repo(destination)
    return repo, next_tag


MEASURED: list[dict[str, Any]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collect what the image tests measured (from xdist workers too)."""
    if report.when == "call":
        for key, value in report.user_properties:
            if key == "image measurements" and isinstance(value, dict):
                MEASURED.append(value)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if MEASURED:
        terminalreporter.section("image measurements")
        for row in sorted(MEASURED, key=lambda row: str(row["answers"])):
            terminalreporter.write_line(
                "  ".join(f"{key}={value}" for key, value in row.items())
            )
