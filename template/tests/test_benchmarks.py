"""The benchmarks run (their figures are read by people, not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def test_the_overhead_benchmark_runs_and_reports_every_server() -> None:
    command = [
        sys.executable, "-m", "benchmarks.overhead",
        "--seconds", "0.3", "--rounds", "1", "--connections", "4",
        "--memory-requests", "10500", "--skip-db",
    ]  # fmt: skip
    result = subprocess.run(  # noqa: S603 - our own interpreter and module
        command,
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    rows = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
    assert {"bare", "service", "traced"} <= rows
    assert "after 10,500" in result.stdout
