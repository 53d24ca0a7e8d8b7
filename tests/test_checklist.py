"""TASKS.md keeps to its rating rule: every row names a test, and every file
and test a row names exists (a test named `path::name` is a function of that
file). Files of a generated service are named by their rendered path or by
their path in `template/`."""

from __future__ import annotations

import ast
import fnmatch
import re
from functools import cache
from pathlib import Path

import pytest

from tests.support import ROOT

TASKS = ROOT / "TASKS.md"
STATUS = re.compile(r"\*\*(done|partial|not yet)\*\*")
CODE = re.compile(r"`([^`]+)`")
# A path of the repository or of a generated service, with an optional
# `::function` (or a `::function` alone, of the file named before it).
REFERENCE = re.compile(
    r"^(?P<path>(?:[\w.{}%!=' *-]+/)*[\w.{}%!=' *-]*\.(?:py|md|yml|yaml|json|toml|"
    r"jinja|ini|rego|txt))?(?:::(?P<function>[\w*]+))?$"
)
# Any other span that names a place in the repository or a service: a
# folder (`template/tests/fixtures/`) or a file without a suffix (`.ci/run`).
PLACE = re.compile(
    r"^(?:template|tests|scripts|extensions|migrations_copier|\.github|\.ci|app|"
    r"ops|deploy|migrations|benchmarks)/[^<>$`]*$"
)
TEST_NAME = re.compile(r"^test_\w+$")
JINJA = re.compile(r"\{%.*?%\}")


def rows() -> list[tuple[str, str, str]]:
    """(item, status cell, evidence) of every checklist row."""
    found = []
    for line in TASKS.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] not in {"item", "---"}:
            found.append((cells[0], cells[1], cells[2]))
    return found


@cache
def files() -> dict[str, Path]:
    """Every file of the repository by its path, and every file of the
    template also by the path it renders to (Jinja and `.jinja` removed)."""
    known: dict[str, Path] = {}
    for path in ROOT.rglob("*"):
        parts = path.relative_to(ROOT).parts
        if {".git", ".venv", "__pycache__"} & set(parts) or "cache" in parts[0]:
            continue
        name = str(path.relative_to(ROOT))
        known[name] = path
        if parts[0] == "template":
            rendered = JINJA.sub(lambda m: "", name).removesuffix(".jinja")
            rendered = re.sub(r"/+", "/", rendered)
            known.setdefault(rendered, path)
            # Jinja that keeps a folder's name: `{% if x %}worker{% endif %}`.
            kept = re.sub(r"\{%[^%]*%\}([^{/]*)\{%[^%]*%\}", r"\1", name)
            known.setdefault(kept.removesuffix(".jinja"), path)
    return known


def resolve(path: str) -> list[Path]:
    """The files `path` names: a full path, or a file's name (a test module
    named alone, as `test_auth.py`)."""
    known = files()
    path = path.rstrip("/")
    for name in (path, f"template/{path}"):  # a service's path, as it renders
        if "*" in name:
            return [known[found] for found in fnmatch.filter(known, name)]
        if name in known:
            return [known[name]]
    if "/" in path:
        return []
    return [file for name, file in known.items() if name.endswith("/" + path)]


@cache
def modules_of_tests() -> list[Path]:
    return [
        f
        for f in set(files().values())
        if f.is_file()
        and rendered_name(f).startswith("test_")
        and rendered_name(f).endswith(".py")
    ]


def rendered_name(path: Path) -> str:
    return JINJA.sub("", path.name).removesuffix(".jinja")


def functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def missing_references(evidence: str) -> tuple[list[str], int]:
    """The references of a row that name nothing, and how many tests it names."""
    missing, tests, last = [], 0, None
    for code in CODE.findall(evidence):
        code = code.strip()
        if TEST_NAME.match(code):  # a test named alone
            if not any(code in functions(f) for f in modules_of_tests()):
                missing.append(code)
            continue
        match = REFERENCE.match(code)
        place = PLACE.match(code) and not re.search(r"\s", JINJA.sub("", code))
        if (match is None or not (match["path"] or match["function"])) and place:
            if not resolve(code):
                missing.append(code)
            continue
        if match is None or not (match["path"] or match["function"]):
            continue
        targets = resolve(match["path"]) if match["path"] else last
        if match["path"] and not targets:
            missing.append(code)
            continue
        if targets is None:
            missing.append(f"{code} (no file named before it)")
            continue
        last = targets
        if any(rendered_name(t).startswith("test_") for t in targets):
            tests += 1
        if match["function"]:
            python = [
                t for t in targets if t.is_file() and rendered_name(t).endswith(".py")
            ]
            names = set().union(*(functions(t) for t in python))
            if not fnmatch.filter(names, match["function"]):
                missing.append(code)
    return missing, tests


@pytest.mark.parametrize(("item", "status", "evidence"), rows(), ids=lambda v: v[:40])
def test_every_row_names_a_test_that_exists(
    item: str, status: str, evidence: str
) -> None:
    missing, tests = missing_references(evidence)

    assert STATUS.search(status), f"{item}: no rating"
    assert missing == [], f"{item}: names what does not exist"
    assert tests > 0, f"{item}: names no test"


def test_a_row_is_done_only_if_nothing_it_needs_is_missing_here() -> None:
    """Static evidence, or evidence that needs what this machine lacks, is
    partial: a row rated done does not say that it has not run."""
    overstated = [
        item
        for item, status, evidence in rows()
        if "**done**" in status
        and re.search(
            r"\b(has not run|not run here|never run|static(ally)? only"
            r"|checked statically|not checked against)\b",
            evidence,
        )
    ]

    assert overstated == []


def test_the_references_are_checked() -> None:
    """The checker finds a missing file, a missing test and a row without one."""
    assert missing_references("`tests/test_nothing_here.py`")[0]
    assert missing_references("`tests/test_repo.py::test_no_such_test`")[0]
    assert missing_references("`README.md`") == ([], 0)
    assert missing_references("`tests/test_repo.py::test_template_repo_*`") == ([], 1)
    assert missing_references("`template/tests/worker/test_stub.py`") == ([], 1)
    assert missing_references("`template/tests/no_such_folder/`")[0]
    assert missing_references("`.ci/run`, `template/tests/fixtures/`") == ([], 0)
    assert missing_references("`test_no_such_test_anywhere`")[0]
    assert missing_references("`template/app/{% if x %}nothing{% endif %}/`")[0]


def test_the_status_line_counts_the_rows() -> None:
    counted = {"done": 0, "partial": 0, "not yet": 0}
    for _, status, _ in rows():
        match = STATUS.search(status)
        assert match is not None
        counted[match[1]] += 1
    said = re.search(
        r"^Status as of v[\d.]+: (\d+) done, (\d+) partial, (\d+) not yet",
        TASKS.read_text(),
        re.MULTILINE,
    )

    assert said is not None
    assert tuple(map(int, said.groups())) == tuple(counted.values())
