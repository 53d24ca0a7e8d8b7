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

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _lib import Changes, main

OLD_IMPORT = "from app.worker.middleware import sessionmaker\n"
NEW_IMPORT = "from app.worker.sessions import sessionmaker\n"
FOLDERS = ("app", "tests", "benchmarks")
FIRST_PARTY = ("from app.", "from tests.")


def module_of(line: str) -> str:
    return line.split()[1]


def rewritten(text: str) -> str:
    """`text` importing sessionmaker from its new module, the line moved to
    where isort (profile black) sorts it in its block of the service's own
    imports; `text` itself where it has no old import."""
    lines = text.splitlines(keepends=True)
    if OLD_IMPORT not in lines:
        return text
    at = lines.index(OLD_IMPORT)
    del lines[at]
    start = at
    while start > 0 and lines[start - 1].startswith(FIRST_PARTY):
        start -= 1
    end = at
    while end < len(lines) and lines[end].startswith(FIRST_PARTY):
        end += 1
    key = module_of(NEW_IMPORT)
    before = [i for i in range(start, end) if module_of(lines[i]) > key]
    lines.insert(before[0] if before else end, NEW_IMPORT)
    return "".join(lines)


def import_sessionmaker_from_its_new_module(project: Path) -> list[str]:
    """Rewrite the old import wherever a service file has it."""
    changed = []
    for folder in FOLDERS:
        for path in sorted((project / folder).rglob("*.py")):
            text = path.read_text()
            new = rewritten(text)
            if new != text:
                path.write_text(new)
                changed.append(path.relative_to(project).as_posix())
    if not changed:
        return []
    return [f"sessionmaker imported from app.worker.sessions in {', '.join(changed)}"]


CHANGES = Changes(
    version="v0.13.0",
    after_steps=(import_sessionmaker_from_its_new_module,),
)

if __name__ == "__main__":
    sys.exit(main(CHANGES))
