"""Migration to v0.13.0.

v0.13.0 splits `app/worker/middleware.py` into a package, one middleware per
module, and moves the tasks' sessionmaker out of it to `app/worker/sessions.py`
(`app.worker.task_session()` is the new front door). The old import still
works in 0.13, with a DeprecationWarning, which the services' tests turn into
an error for code under `app`: so the services' own files (the example's
task, the owner's tasks and tests, which updates never render) get the new
import here. Only the import line changes; `sessionmaker()()` works as it did.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _lib import Changes, main

OLD_IMPORT = "from app.worker.middleware import sessionmaker\n"
NEW_IMPORT = "from app.worker.sessions import sessionmaker\n"
FOLDERS = ("app", "tests", "benchmarks")


def import_sessionmaker_from_its_new_module(project: Path) -> list[str]:
    """Rewrite the old import line wherever a service file has it."""
    changed = []
    for folder in FOLDERS:
        for path in sorted((project / folder).rglob("*.py")):
            text = path.read_text()
            if OLD_IMPORT not in text:
                continue
            path.write_text(text.replace(OLD_IMPORT, NEW_IMPORT))
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
