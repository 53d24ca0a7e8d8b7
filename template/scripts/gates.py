"""Every gate a change must pass, in order, from the locked environment.

    uv run python scripts/gates.py                  # all of them, as CI runs them
    uv run python scripts/gates.py --fix --skip pytest   # what pre-commit runs
    uv run python scripts/gates.py --only ruff --only mypy
    uv run python scripts/gates.py -- -m ""         # pytest arguments after --

The list below is the only list: pre-commit (.pre-commit-config.yaml) and CI
(.github/workflows/ci.yml) call this file (tests/test_gates.py holds them to
it). Every gate runs even when one before it failed, as pre-commit runs every
hook, so one run shows every problem; it then exits 1. Each gate's output
starts with a line `== NAME == COMMAND`, and the last line names the gates
that failed, or says that all passed.

Standard library only: it runs the tools of the environment it runs in, so
run it with `uv run`, which syncs that environment with uv.lock first.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# detect-secrets reads every file an owner would commit; uv.lock is all hashes.
NOT_SCANNED = {"uv.lock"}
# Outside a git repository: every file but these (see .gitignore).
NOT_COMMITTED = {
    ".git", ".venv", "var", "__pycache__", ".mypy_cache", ".ruff_cache",
    ".pytest_cache", "dist", "build", ".env",
}  # fmt: skip


@dataclass(frozen=True)
class Gate:
    name: str
    check: tuple[str, ...]
    # What --fix runs instead: the formatters rewrite files rather than fail.
    fix: tuple[str, ...] | None = None


GATES = (
    Gate("lock", ("uv", "lock", "--check")),
    Gate("black", ("black", "--check", "."), fix=("black", ".")),
    Gate("isort", ("isort", "--check-only", "."), fix=("isort", ".")),
    Gate("ruff", ("ruff", "check", "."), fix=("ruff", "check", "--fix", ".")),
    Gate("mypy", ("mypy",)),
    Gate("bandit", ("bandit", "-q", "-c", "pyproject.toml", "-r", "app")),
    Gate("detect-secrets", ("detect-secrets-hook", "--baseline", ".secrets.baseline")),
    Gate("pytest", ("pytest",)),
)
NAMES = [gate.name for gate in GATES]


def parse(argv: list[str]) -> argparse.Namespace:
    """The options, and the pytest arguments (those after `--`)."""
    parser = argparse.ArgumentParser(
        prog="scripts/gates.py",
        description=f"Run the gates in order: {', '.join(NAMES)}.",
        epilog="Arguments after -- go to pytest, e.g. -- -m '' to run the slow tests too.",
    )
    parser.add_argument(
        "--fix", action="store_true", help="let black, isort and ruff rewrite files"
    )
    for flag, meaning in (
        ("--skip", "leave this gate out"),
        ("--only", "run only this gate"),
    ):
        parser.add_argument(
            flag,
            action="append",
            default=[],
            choices=NAMES,
            metavar="NAME",
            help=f"{meaning} (repeatable)",
        )
    pytest_args: list[str] = []
    if "--" in argv:
        argv, pytest_args = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    options = parser.parse_args(argv)
    options.pytest_args = pytest_args
    if pytest_args and "pytest" not in [gate.name for gate in selected(options)]:
        parser.error("arguments after -- are pytest's, and pytest does not run")
    return options


def selected(options: argparse.Namespace) -> list[Gate]:
    """The gates to run, in the list's order."""
    return [
        gate
        for gate in GATES
        if (not options.only or gate.name in options.only)
        and gate.name not in options.skip
    ]


def command(gate: Gate, options: argparse.Namespace) -> list[str]:
    args = list(gate.fix if options.fix and gate.fix else gate.check)
    if gate.name == "lock":
        # uv run names its own binary in UV; otherwise uv is on PATH.
        args[0] = os.environ.get("UV", "uv")
    if gate.name == "detect-secrets":
        args.extend(committed_files())
    if gate.name == "pytest":
        args.extend(options.pytest_args)
    return args


def committed_files() -> list[str]:
    """The files git tracks (staged ones included: what a commit holds), or,
    outside a repository, every file but NOT_COMMITTED."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached"],  # noqa: S607 - git on PATH
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:  # no git here
        listed = None
    if listed is not None and listed.returncode == 0:
        names = [name for name in listed.stdout.split("\0") if name]
    else:
        names = [
            path.relative_to(ROOT).as_posix()
            for path in ROOT.rglob("*")
            if not set(path.relative_to(ROOT).parts) & NOT_COMMITTED
        ]
    # A file deleted but not yet staged is still listed by git.
    return sorted(
        name
        for name in names
        if Path(name).name not in NOT_SCANNED and (ROOT / name).is_file()
    )


def main(argv: list[str]) -> int:
    options = parse(argv)
    gates = selected(options)
    env = dict(os.environ)
    # The tools next to this interpreter, even when its venv is not activated.
    env["PATH"] = os.pathsep.join([sysconfig.get_path("scripts"), env.get("PATH", "")])
    started = time.monotonic()
    passed: list[str] = []
    failed: list[str] = []
    for gate in gates:
        args = command(gate, options)
        shown = shlex.join([Path(args[0]).name, *args[1:12]])
        shown += " ..." if len(args) > 12 else ""
        print(f"== {gate.name} == {shown}", flush=True)
        ran = subprocess.run(args, cwd=ROOT, env=env, check=False)  # noqa: S603 - GATES
        (passed if ran.returncode == 0 else failed).append(gate.name)
    took = f"{time.monotonic() - started:.0f} s"
    if failed:
        print(
            f"gates: FAILED {', '.join(failed)}; "
            f"passed {', '.join(passed) or 'none'} ({took})",
            flush=True,
        )
        return 1
    print(
        f"gates: all {len(passed)} passed ({', '.join(passed)}) in {took}", flush=True
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
