"""The benchmarks run (their figures are read by people, not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# Seconds each, in processes of their own: `uv run pytest -m ""` runs them.
pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parent.parent
SHORT = [
    "--seconds", "0.3", "--rounds", "1", "--warmup", "0.1", "--connections", "4",
    "--skip-db",
]  # fmt: skip


def overhead(*args: str) -> tuple[str, set[str]]:
    """Run benchmarks.overhead briefly; its output and the first word of each line."""
    result = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "benchmarks.overhead", *SHORT, *args],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
    return result.stdout, rows


def test_the_overhead_benchmark_runs_and_reports_every_server() -> None:
    output, rows = overhead("--memory-requests", "10500")

    assert {"bare", "service", "jwt", "text", "traced"} <= rows
    assert "after 10,500" in output


def test_the_protocol_comparison_runs_and_reports_every_protocol() -> None:
    _, rows = overhead("--protocols")

    assert {"httptools", "bounded", "h11"} <= rows


def test_the_layer_breakdown_runs_and_reports_every_layer() -> None:
    output, rows = overhead("--layers", "--calls", "50")

    assert {"bare", "routes", "+"} <= rows
    for layer in ("API guard", "edge", "observability", "jwt check"):
        assert f"+ {layer}" in output
