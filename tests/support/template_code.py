"""The template's Python, checked the way a generated service checks it.

Each answer set is rendered once (in process, tasks skipped) into a folder
under the user's cache that is kept between runs: files whose text did not
change keep their modification time, so black's, ruff's and mypy's own caches
stay valid and a repeat run checks only what changed. Black, isort and ruff
(this repository's) and mypy (in a virtualenv holding every answer set's
dependencies) read the rendered pyproject.toml, as the service's gates do.
Findings name the tool and the template file the rendered one came from.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import copier

from extensions.pythons import installed_pythons
from tests.support import ROOT, Run, answer_sets, run, tool_env

CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "prodstarter-fastapi"
)
RENDERED = CACHE / "rendered"
MYPY_CACHES = CACHE / "mypy"
# What copier reads to render: the questions, the extensions, the template.
SOURCES = ("copier.yml", "extensions", "template")
TEMPLATE = ROOT / "template"
# Written last into a folder that is complete (a render, the virtualenv, a
# mypy cache): what it was made from, or "done".
STAMP = ".prodstarter-stamp"
# Jinja in a template file's name: `{% if example %}items{% endif %}` -> `items`.
JINJA_TAG = re.compile(r"\{%.*?%\}")
# `path:line:column: message` (ruff) and `path:line: error: message` (mypy).
LOCATED = re.compile(
    r"^(?P<path>[^:\s][^:]*\.py):(?P<line>\d+):(?:\d+:)?\s*(?P<message>.+)$"
)
HUNK = re.compile(r"^@@ -(\d+)")
BLACK_FILE = re.compile(r"^--- (?P<path>\S+\.py)\t")
BLACK_ERROR = re.compile(
    r"^error: cannot \w+:? (?P<path>[^:\s]+\.py):\s*(?P<message>.*)$", re.MULTILINE
)
PARSE_ERROR_AT = re.compile(r"(\d+):\d+")
REFORMAT = re.compile(r"^would reformat (.+\.py)$", re.MULTILINE)
ISORT_FILE = re.compile(r"^--- (?P<path>\S+\.py):before")


@dataclass(frozen=True)
class Finding:
    tool: str
    path: str  # the template file, relative to the repository
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.tool}: {self.path}:{self.line}: {self.message}"


@contextmanager
def locked(path: Path, shared: bool = False) -> Iterator[None]:
    """One process at a time (xdist workers, or two checkouts) per `path`;
    or, `shared`, any number that only read what the exclusive one writes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def template_digest() -> str:
    """Hash of the names, sizes and times of everything copier reads here."""
    digest = hashlib.sha256()
    for name in SOURCES:
        top = ROOT / name
        files = [top] if top.is_file() else sorted(top.rglob("*"))
        for path in files:
            if path.is_file() and "__pycache__" not in path.parts:
                status = path.stat()
                entry = (path.relative_to(ROOT), status.st_size, status.st_mtime_ns)
                digest.update(repr(entry).encode())
    return digest.hexdigest()


def render_key(name: str) -> str:
    answers = answer_sets()[name]
    payload = [template_digest(), answers]
    if "python_version" not in answers:
        # The defaults' Python is the first one uv finds here.
        payload.append(sorted(installed_pythons()))
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def rendered(name: str) -> Path:
    """The answer set `name` rendered from this working tree (cached)."""
    project = RENDERED / name
    with locked(RENDERED / f"{name}.lock"):
        key = render_key(name)
        stamp = project / STAMP
        if stamp.is_file() and stamp.read_text() == key:
            return project
        with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
            # A copy outside git: copier renders it as it is, without a clone.
            source = Path(scratch) / "template"
            source.mkdir()
            for part in SOURCES:
                if (ROOT / part).is_dir():
                    shutil.copytree(
                        ROOT / part,
                        source / part,
                        ignore=shutil.ignore_patterns("__pycache__"),
                    )
                else:
                    shutil.copy2(ROOT / part, source / part)
            fresh = Path(scratch) / "project"
            copier.run_copy(
                str(source),
                fresh,
                data=answer_sets()[name],
                defaults=True,
                skip_tasks=True,
                unsafe=True,
                quiet=True,
            )
            stamp.unlink(missing_ok=True)
            synchronise(fresh, project)
        stamp.write_text(key)
    return project


def synchronise(source: Path, destination: Path) -> None:
    """Make `destination` hold `source`'s files, rewriting only those that
    differ (unchanged files keep their mtime, and the tools' caches hold)."""
    wanted = {p.relative_to(source) for p in source.rglob("*") if p.is_file()}
    destination.mkdir(parents=True, exist_ok=True)
    for path in sorted(destination.rglob("*"), reverse=True):
        relative = path.relative_to(destination)
        if relative.parts[0].startswith((".ruff_cache", STAMP)):
            continue
        if path.is_file() and relative not in wanted:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    for relative in wanted:
        target = destination / relative
        text = (source / relative).read_bytes()
        if not target.is_file() or target.read_bytes() != text:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(text)


def template_sources() -> dict[str, str]:
    """Rendered path -> the template file it comes from (relative to ROOT)."""
    sources = {}
    for path in TEMPLATE.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            relative = path.relative_to(TEMPLATE).as_posix()
            plain = JINJA_TAG.sub("", relative).removesuffix(".jinja")
            sources[plain] = path.relative_to(ROOT).as_posix()
    return sources


class Locator:
    """Names the template file behind a path a tool printed."""

    def __init__(self, project: Path) -> None:
        self.project = project.resolve()
        self.sources = template_sources()

    def __call__(self, path: str) -> str:
        relative = Path(path)
        if relative.is_absolute():
            relative = relative.resolve().relative_to(self.project)
        plain = relative.as_posix()
        return self.sources.get(plain, f"{plain} (rendered; no template file)")


def located(tool: str, source: Locator, output: str) -> list[Finding]:
    """`path:line[:column]: message` lines of `output` (ruff, mypy)."""
    findings = []
    for line in output.splitlines():
        match = LOCATED.match(line.strip())
        if match and not match["message"].startswith("note:"):
            path, number = source(match["path"]), int(match["line"])
            findings.append(Finding(tool, path, number, match["message"]))
    return findings


def diffed(
    tool: str, source: Locator, output: str, header: re.Pattern[str]
) -> list[Finding]:
    """The first changed line of each file in a unified diff (black, isort)."""
    findings = []
    current: str | None = None
    number = 0
    for line in output.splitlines():
        started = header.match(line)
        if started:
            current, number = started["path"], 0
        elif current is None:
            continue
        elif hunk := HUNK.match(line):
            number = int(hunk.group(1))
        elif number and line.startswith(("-", "+")):
            message = f"would be reformatted from here: {line[:72]!r}"
            findings.append(Finding(tool, source(current), number, message))
            current = None
        elif number and line.startswith(" "):
            number += 1
    return findings


def unexplained(tool: str, result: Run, findings: list[Finding]) -> list[Finding]:
    """A failure that printed nothing we could place, as a finding of its own."""
    if result.returncode == 0 or findings:
        return findings
    return [Finding(tool, "(rendered project)", 0, result.output.strip())]


def black(project: Path, source: Locator, paths: Sequence[str]) -> list[Finding]:
    # Black writes its cache only on a plain --check; --diff, for the line
    # numbers, runs on the files that check names.
    tool = str(Path(sys.executable).parent / "black")
    checked = run([tool, "--check", *paths], project, tool_env())
    output = checked.output
    reformat = REFORMAT.findall(output)
    if reformat:
        output += run(
            [tool, "--diff", "--quiet", *reformat], project, tool_env()
        ).output
    findings = diffed("black", source, output, BLACK_FILE)
    for error in BLACK_ERROR.finditer(output):
        at = PARSE_ERROR_AT.search(error["message"])
        line = int(at.group(1)) if at else 0
        message = error.group(0).removeprefix("error: ")
        findings.append(Finding("black", source(error["path"]), line, message))
    return unexplained("black", checked, findings)


def isort(project: Path, source: Locator, paths: Sequence[str]) -> list[Finding]:
    tool = str(Path(sys.executable).parent / "isort")
    checked = run(
        [tool, "--check-only", "--diff", "--quiet", *paths], project, tool_env()
    )
    return unexplained(
        "isort", checked, diffed("isort", source, checked.output, ISORT_FILE)
    )


def ruff(project: Path, source: Locator, paths: Sequence[str]) -> list[Finding]:
    tool = str(Path(sys.executable).parent / "ruff")
    checked = run(
        [tool, "check", "--no-fix", "--output-format", "concise", *paths],
        project,
        tool_env(),
    )
    return unexplained("ruff", checked, located("ruff", source, checked.output))


def lint(project: Path, paths: Sequence[str] = (".",)) -> list[Finding]:
    """Black, isort and ruff (this repository's) with the project's
    configuration, on `paths` in it."""
    source = Locator(project)
    return [
        *black(project, source, paths),
        *isort(project, source, paths),
        *ruff(project, source, paths),
    ]


# ------------------------------------------------------------------- mypy


def dependencies(projects: Sequence[Path]) -> list[str]:
    """Every runtime and dev requirement of the rendered projects."""
    wanted: set[str] = set()
    for project in projects:
        pyproject = tomllib.loads((project / "pyproject.toml").read_text())
        wanted.update(pyproject["project"]["dependencies"])
        wanted.update(pyproject["dependency-groups"]["dev"])
    return sorted(wanted)


def typecheck_venv(requirements: Sequence[str]) -> Path:
    """A virtualenv holding `requirements`, rebuilt when they change. Its
    path stays the same, so mypy's cache of the dependencies stays valid for
    those whose text did not change."""
    listed = "\n".join([sys.version, *requirements])
    venv = CACHE / "typecheck"
    with locked(CACHE / "typecheck.lock"):
        stamp = venv / STAMP
        if stamp.is_file() and stamp.read_text() == listed:
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        env = tool_env()
        uv = str(Path(sys.executable).parent / "uv")
        run(
            [uv, "venv", "--quiet", "--python", sys.executable, str(venv)], CACHE, env
        ).check()
        requirements_file = venv / "requirements.in"
        requirements_file.write_text("\n".join(requirements) + "\n")
        run(
            [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
             "-r", str(requirements_file)],
            CACHE,
            env,
        ).check()  # fmt: skip
        stamp.write_text(listed)
    return venv


def mypy_cache(name: str) -> Path:
    return MYPY_CACHES / name


def typecheck_is_warm(name: str) -> bool:
    """Whether mypy has checked answer set `name` here before (its cache then
    holds the dependencies' analysis, ~25 s of CPU per Python version)."""
    return (mypy_cache(name) / STAMP).is_file()


def typecheck(project: Path, name: str, venv: Path) -> list[Finding]:
    """mypy with the project's configuration, from the virtualenv `venv`."""
    cache = mypy_cache(name)
    # The virtualenv is not rebuilt under a running mypy.
    with (
        locked(CACHE / "typecheck.lock", shared=True),
        locked(MYPY_CACHES / f"{name}.lock"),
    ):
        result = run(
            [str(venv / "bin" / "python"), "-m", "mypy", "--cache-dir", str(cache),
             "--no-error-summary", "--show-absolute-path"],
            project,
            tool_env(),
        )  # fmt: skip
        if result.returncode in (0, 1):
            (cache / STAMP).write_text("done")
    return unexplained("mypy", result, located("mypy", Locator(project), result.output))
