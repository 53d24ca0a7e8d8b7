"""Migration to v0.13.0.

v0.13.0 splits `app/worker/middleware.py` into a package, one middleware per
module, and moves the tasks' sessionmaker out of it to `app/worker/sessions.py`
(`app.worker.task_session()` is the new front door). The old import still
works in 0.13, with a DeprecationWarning, which the services' tests turn into
an error for code under `app`: so the services' own files (the example's
task, the owner's tasks and tests, which updates never render) get the new
import here, moved where isort sorts it. Nothing else changes:
`sessionmaker()()` works as it did.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _lib import Changes, main

OLD_MODULE = "app.worker.middleware"
NEW_IMPORT = "from app.worker.sessions import sessionmaker\n"
NAME = "sessionmaker"
FOLDERS = ("app", "tests", "benchmarks")


def first_party(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.ImportFrom)
        and node.level == 0
        and (node.module or "").startswith(("app.", "tests."))
    )


def without_name(lines: list[str], node: ast.ImportFrom) -> list[str]:
    """The statement `node` without `sessionmaker` (none left: no lines)."""
    rest = [alias for alias in node.names if alias.name != NAME or alias.asname]
    if not rest:
        return []
    statement = lines[node.lineno - 1 : node.end_lineno]
    if len(statement) > 1:  # bracketed: one name a line, as black writes it
        return [line for line in statement if line.strip().rstrip(",") != NAME]
    _, hash_, comment = statement[0].rstrip("\n").partition("#")
    names = ", ".join(
        f"{alias.name} as {alias.asname}" if alias.asname else alias.name
        for alias in rest
    )
    tail = f"  #{comment}" if hash_ else ""
    return [f"from {OLD_MODULE} import {names}{tail}\n"]


def rewritten(text: str) -> str:
    """`text` importing sessionmaker from app.worker.sessions instead of
    app.worker.middleware, the new line where isort (profile black) sorts it
    among the service's own imports; `text` itself where it has no such
    top-level import."""
    if OLD_MODULE not in text:
        return text
    try:
        body = ast.parse(text).body
    except SyntaxError:  # conflict markers of this update: changed by hand
        return text
    found = [
        index
        for index, node in enumerate(body)
        if isinstance(node, ast.ImportFrom)
        and node.module == OLD_MODULE
        and node.level == 0
        and any(alias.name == NAME and not alias.asname for alias in node.names)
    ]
    if not found:
        return text
    old = body[found[0]]
    assert isinstance(old, ast.ImportFrom)
    # The run of the service's own imports, line after line, around it.
    first = last = found[0]
    while first > 0 and first_party(body[first - 1]):
        first -= 1
    while last + 1 < len(body) and first_party(body[last + 1]):
        last += 1
    key = NEW_IMPORT.split()[1]
    later = [
        node
        for node in body[first : last + 1]
        if node is not old and str(getattr(node, "module", "")) > key
    ]
    lines = text.splitlines(keepends=True)
    insert_at = later[0].lineno - 1 if later else body[last].end_lineno or 0
    edits = [
        (old.lineno - 1, old.end_lineno or old.lineno, without_name(lines, old)),
        (insert_at, insert_at, [NEW_IMPORT]),
    ]
    for begin, stop, replacement in sorted(edits, reverse=True):
        lines[begin:stop] = replacement
    return "".join(lines)


def import_sessionmaker_from_its_new_module(project: Path) -> list[str]:
    """Rewrite the old import wherever a service file has it; name the files
    that still mention it some other way (to change by hand)."""
    changed, by_hand = [], []
    for folder in FOLDERS:
        for path in sorted((project / folder).rglob("*.py")):
            text = path.read_text()
            new = rewritten(text)
            if new != text:
                path.write_text(new)
                changed.append(path.relative_to(project).as_posix())
            if OLD_MODULE in new and NAME in new:
                by_hand.append(path.relative_to(project).as_posix())
    done = []
    if changed:
        done.append(
            f"sessionmaker imported from app.worker.sessions in {', '.join(changed)}"
        )
    if by_hand:
        done.append(
            "check by hand (app.worker.middleware.sessionmaker is deprecated):"
            f" {', '.join(by_hand)}"
        )
    return done


CHANGES = Changes(
    version="v0.13.0",
    after_steps=(import_sessionmaker_from_its_new_module,),
)

if __name__ == "__main__":
    sys.exit(main(CHANGES))
