"""v0.13.0's migration (migrations_copier/v0_13_0.py): the services' own files
that took the tasks' sessionmaker from app.worker.middleware import it from
app.worker.sessions, where it moved (the old import warns, and the services'
tests make a DeprecationWarning under `app` an error)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.migrations import MIGRATIONS, load

V0_13_0: Any = load(MIGRATIONS / "v0_13_0.py")
STEP = V0_13_0.import_sessionmaker_from_its_new_module

EXAMPLE_TASK = '''"""Background tasks of publications."""

from loguru import logger

from app.publications.models import ItemPublication, utcnow
from app.worker.idempotency import once
from app.worker.middleware import sessionmaker
from app.worker.registry import task


@task()
async def publish_item(item_id: int, request_key: str) -> None:
    async with sessionmaker()() as session, once(session, request_key) as first:
        logger.info("first: {first}", first=first)
'''
OWNER_MIDDLEWARE = "from app.worker.middleware import Heartbeat, TaskTracing\n"


def service(tmp_path: Path) -> Path:
    files = {
        "app/publications/tasks.py": EXAMPLE_TASK,
        "app/invoices/tasks.py": EXAMPLE_TASK.replace("publications", "invoices"),
        "tests/invoices/test_tasks.py": "from app.worker.middleware import sessionmaker\n",
        "app/invoices/worker.py": OWNER_MIDDLEWARE,
        "app/invoices/tasks_new.py": "from app.worker.sessions import sessionmaker\n",
    }
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    return tmp_path


def test_every_file_importing_the_old_sessionmaker_imports_the_new_one(
    tmp_path: Path,
) -> None:
    project = service(tmp_path)

    first = STEP(project)
    second = STEP(project)

    for path in (
        "app/publications/tasks.py",
        "app/invoices/tasks.py",
        "tests/invoices/test_tasks.py",
    ):
        text = (project / path).read_text()
        assert "from app.worker.sessions import sessionmaker\n" in text, path
        assert "app.worker.middleware" not in text, path
    # Only the import changes, to where isort sorts it.
    assert (project / "app/publications/tasks.py").read_text() == EXAMPLE_TASK.replace(
        "from app.worker.middleware import sessionmaker\n"
        "from app.worker.registry import task\n",
        "from app.worker.registry import task\n"
        "from app.worker.sessions import sessionmaker\n",
    )
    assert first == [
        "sessionmaker imported from app.worker.sessions in app/invoices/tasks.py,"
        " app/publications/tasks.py, tests/invoices/test_tasks.py"
    ]
    assert second == []


def test_the_new_import_goes_where_isort_puts_it_among_the_services_own() -> None:
    text = (
        "import pytest\n\n"
        "from app.worker.middleware import sessionmaker\n"
        "from app.worker.settings import WorkerSettings\n"
        "from tests.fixtures.tasks import EnqueuedTasks\n\n"
        "X = 1\n"
    )

    assert V0_13_0.rewritten(text) == (
        "import pytest\n\n"
        "from app.worker.sessions import sessionmaker\n"
        "from app.worker.settings import WorkerSettings\n"
        "from tests.fixtures.tasks import EnqueuedTasks\n\n"
        "X = 1\n"
    )
    # Last of its block.
    assert V0_13_0.rewritten(
        "from app.db import SessionDep\n"
        "from app.worker.middleware import sessionmaker\n\nX = 1\n"
    ) == (
        "from app.db import SessionDep\n"
        "from app.worker.sessions import sessionmaker\n\nX = 1\n"
    )


def test_a_bracketed_import_after_it_is_stepped_over() -> None:
    text = (
        "from app.worker.middleware import sessionmaker\n"
        "from app.worker.registry import (\n"
        "    TASKS,\n"
        "    task,\n"
        ")\n"
        "from app.zz import thing\n\nX = 1\n"
    )

    assert V0_13_0.rewritten(text) == (
        "from app.worker.registry import (\n"
        "    TASKS,\n"
        "    task,\n"
        ")\n"
        "from app.worker.sessions import sessionmaker\n"
        "from app.zz import thing\n\nX = 1\n"
    )


def test_sessionmaker_leaves_an_import_of_several_names_and_its_comment() -> None:
    one_line = (
        "from app.worker.middleware import Heartbeat, sessionmaker  # noqa: F401\n"
    )
    bracketed = (
        "from app.worker.middleware import (\n"
        "    Heartbeat,\n"
        "    TaskTracing,\n"
        "    sessionmaker,\n"
        ")\n"
    )

    assert V0_13_0.rewritten(one_line) == (
        "from app.worker.middleware import Heartbeat  # noqa: F401\n"
        "from app.worker.sessions import sessionmaker\n"
    )
    assert V0_13_0.rewritten(bracketed) == (
        "from app.worker.middleware import (\n"
        "    Heartbeat,\n"
        "    TaskTracing,\n"
        ")\n"
        "from app.worker.sessions import sessionmaker\n"
    )


@pytest.mark.parametrize(
    ("name", "text"),
    [
        pytest.param(
            "late.py",
            "def open_session():\n    from app.worker.middleware import sessionmaker\n",
            id="an-import-inside-a-function",
        ),
        pytest.param(
            "tasks.py",
            "<<<<<<< before updating\n"
            "from app.worker.middleware import sessionmaker\n"
            "=======\n"
            "from app.worker import task_session\n"
            ">>>>>>> after updating\n",
            id="a-file-this-update-left-conflicted",
        ),
    ],
)
def test_a_file_it_cannot_rewrite_is_left_as_is_and_named(
    tmp_path: Path, name: str, text: str
) -> None:
    """A use it cannot rewrite, or a file it cannot parse, is for the owner."""
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / name).write_text(text)

    done = STEP(tmp_path)

    assert (tmp_path / "app" / name).read_text() == text
    assert done == [
        "check by hand (app.worker.middleware.sessionmaker is deprecated):"
        f" app/{name}"
    ]


def test_other_imports_from_the_worker_middleware_are_left_alone(
    tmp_path: Path,
) -> None:
    project = service(tmp_path)

    STEP(project)

    assert (project / "app/invoices/worker.py").read_text() == OWNER_MIDDLEWARE


def test_the_script_runs_both_stages_as_copier_runs_them(tmp_path: Path) -> None:
    project = service(tmp_path)
    (project / ".copier-answers.yml").write_text("_commit: v0.12.1\nbroker: redis\n")
    script = str(MIGRATIONS / "v0_13_0.py")

    before = subprocess.run(
        [sys.executable, script, "before"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    )
    after = subprocess.run(
        [sys.executable, script, "after", "--template", str(tmp_path / "unused")],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    )

    assert before.stdout == "migration v0.13.0 (before): nothing to change\n"
    assert after.stdout.startswith("migration v0.13.0 (after): sessionmaker imported")
    assert (
        "app.worker.middleware" not in (project / "app/invoices/tasks.py").read_text()
    )
