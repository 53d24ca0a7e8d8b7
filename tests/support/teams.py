"""Teams that own services made from the template, doing what real teams do
between template releases, and what each must find after `copier update`.

A team adds a domain of its own (`invoices`: a table, a router, a task and
tests), registers it where its release told it to (the router in the API
module, the model in the model registry; from v0.7.0 on, its middleware,
settings group and task through the seams), generates its Alembic revision
with `alembic revision --autogenerate` against its database, migrates, keeps
rows in its database (PostgreSQL, or the SQLite file that answer runs on; its own rows and the example's), adds a dependency, changes a
documented value, deletes an optional file. One team keeps the example; the
other removes it (`--data example=false`). Each edit is checked after the
update byte for byte, and the rows in the database after `python -m app
migrate` with the new release.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tests.support import POSTGRES, Run, missing, reachable, run
from tests.support.migrations import version_key

SEAMS_FROM = (0, 7, 0)
PSQL = ["psql", "-h", POSTGRES[0], "-p", str(POSTGRES[1]), "-U", "postgres"]

INVOICES_INIT = '"""Invoices: the team\'s own domain."""\n'
INVOICES_MODELS = '''"""The invoices table."""

from sqlmodel import Field, SQLModel


class Invoice(SQLModel, table=True):
    __tablename__ = "invoices"

    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(max_length=50, unique=True)
    amount_cents: int
'''
INVOICES_ROUTER = '''"""HTTP routes for invoices."""

from fastapi import APIRouter
from sqlmodel import col, select

from app.db import SessionDep
from app.invoices.models import Invoice

router = APIRouter(prefix="/invoices", tags=["invoices"])


@router.get("")
async def list_invoices(session: SessionDep) -> list[str]:
    """List the invoice numbers."""
    numbers = await session.exec(select(Invoice.number).order_by(col(Invoice.number)))
    return list(numbers)
'''
INVOICES_TASKS = '''"""Background tasks of invoices."""

from loguru import logger

from app.worker.idempotency import once
from app.worker.middleware import sessionmaker
from app.worker.registry import task


@task()
async def send_invoice(number: str) -> None:
    """Send an invoice to its customer, once however often it is asked."""
    async with sessionmaker()() as session, once(session, f"send:{number}") as first:
        if first:
            logger.info("invoice {number} sent", number=number)
'''
# The route that sends it, where the service has a worker.
SEND_IMPORTS = (
    "from app.invoices.tasks import send_invoice\n"
    "from app.worker.jobs import JobsDep\n"
)
SEND_ROUTE = '''

@router.post("/{number}/send", status_code=202)
async def send(number: str, jobs: JobsDep) -> dict[str, str]:
    """Send the invoice in the background."""
    return {"message_id": await jobs.send(send_invoice, number)}
'''
# From v0.11.0, what the app's routes enqueue in a test waits in the `tasks`
# fixture: the team tests its task through its route.
TASKS_FIXTURE_FROM = (0, 11, 0)
INVOICES_TASK_TEST = '''"""The team's own test of its task."""

import pytest
from httpx import AsyncClient
from sqlmodel.ext.asyncio.session import AsyncSession

from app.worker.idempotency import ProcessedMessage
from tests.fixtures.tasks import EnqueuedTasks

pytestmark = pytest.mark.anyio


async def test_an_invoice_sent_twice_is_sent_once(
    client: AsyncClient, session: AsyncSession, tasks: EnqueuedTasks
) -> None:
    for _ in range(2):
        response = await client.post("/api/v1/invoices/INV-9/send")
        assert response.status_code == 202

    assert await tasks.run() == 2
    assert await session.get(ProcessedMessage, "send:INV-9") is not None
'''
# What release migrations rewrite in a team's own files (a codemod, as v0.7.0
# rewrote app/api/v1.py), written out: (release, the file before, after).
CODEMODS = (
    (
        (0, 13, 0),
        INVOICES_TASKS,
        INVOICES_TASKS.replace(
            "from app.worker.middleware import sessionmaker\n"
            "from app.worker.registry import task\n",
            "from app.worker.registry import task\n"
            "from app.worker.sessions import sessionmaker\n",
        ),
    ),
)


def as_migrated(text: str, release: str, target: tuple[int, ...]) -> str:
    """A team's file as the migrations of an update from `release` to
    `target` leave it."""
    for version, before, after in CODEMODS:
        if version_key(release) < version <= target and text == before:
            text = after
    return text


INVOICES_SETTINGS = '''

class InvoiceSettings(BaseModel):
    """INVOICES_*: how the team's invoices are made."""

    due_days: int = Field(default=30, ge=1, le=365)
'''
INVOICES_TEST = '''"""The team's own test of its own domain."""

import pytest
from httpx import AsyncClient
from sqlmodel.ext.asyncio.session import AsyncSession

from app.invoices.models import Invoice

pytestmark = pytest.mark.anyio


async def test_invoices_are_listed(client: AsyncClient, session: AsyncSession) -> None:
    session.add(Invoice(number="INV-9", amount_cents=900))
    await session.flush()

    response = await client.get("/api/v1/invoices")

    assert (response.status_code, response.json()) == (200, ["INV-9"])
'''
ROUTER_IMPORT = "from app.invoices.router import router as invoices_router\n"
ROUTER_INCLUDE = "router.include_router(invoices_router)\n"
# Since v0.10.0, app/api/v1.py lists its routers.
ROUTER_LISTED = "routers.append(invoices_router)\n"


def router_line(api: str) -> str:
    """How the team adds its router to this app/api/v1.py."""
    return ROUTER_LISTED if "\nrouters: list[APIRouter] = [" in api else ROUTER_INCLUDE


MODEL_IMPORT = "from app.invoices.models import Invoice as Invoice\n"
PLUGIN = """    # The team's own part: compressed answers, its task.
    Plugin(
        name="invoices",
        middleware=[Middleware(GZipMiddleware, minimum_size=1000)],
        task_modules={tasks},
    ),
"""
PLUGIN_IMPORTS = (
    "from starlette.middleware import Middleware\n"
    "from starlette.middleware.gzip import GZipMiddleware\n\n"
)
DEPENDENCY = '    "humanize>=4.9",\n'
OPTIONAL_FILE = ".pre-commit-config.yaml"
EXAMPLE_FILES = ("app/items", "app/publications", "tests/items", "tests/publications")


class Database(Protocol):
    """The team's database: where its rows live."""

    @property
    def url(self) -> str: ...

    def sql(self, statement: str) -> list[tuple[object, ...]]: ...

    def tables(self) -> set[str]: ...


@dataclass
class PostgresDatabase:
    """A PostgreSQL database of the team's own on the local server."""

    name: str

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@{POSTGRES[0]}:{POSTGRES[1]}/{self.name}"

    def sql(self, statement: str) -> list[tuple[object, ...]]:
        result = subprocess.run(
            [*PSQL, "-d", self.name, "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1",
             "-c", statement],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return [tuple(line.split("\t")) for line in result.stdout.splitlines()]

    def tables(self) -> set[str]:
        rows = self.sql("select tablename from pg_tables where schemaname = 'public'")
        return {str(row[0]) for row in rows}


@dataclass
class SqliteDatabase:
    """The team's SQLite file (its production database with that answer)."""

    path: Path

    @property
    def url(self) -> str:
        return f"sqlite+aiosqlite:///{self.path}"

    def sql(self, statement: str) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.path) as connection:
            return [tuple(row) for row in connection.execute(statement).fetchall()]

    def tables(self) -> set[str]:
        rows = self.sql("select name from sqlite_master where type = 'table'")
        return {str(row[0]) for row in rows}


@contextmanager
def database(kind: str, folder: Path) -> Iterator[Database]:
    """A fresh database of the kind the service runs on in production."""
    with _new_database(kind, folder, template=None) as db:
        yield db


@contextmanager
def clone_database(db: Database, folder: Path) -> Iterator[Database]:
    """A copy of `db`, rows and Alembic version included (nothing may be
    connected to it: the team's commands have exited)."""
    if isinstance(db, SqliteDatabase):
        with _new_database("sqlite", folder, template=db.path) as clone:
            yield clone
        return
    assert isinstance(db, PostgresDatabase)
    with _new_database("postgresql", folder, template=db.name) as clone:
        yield clone


@contextmanager
def _new_database(
    kind: str, folder: Path, template: Path | str | None
) -> Iterator[Database]:
    if kind == "sqlite":
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "team.db"
        if isinstance(template, Path):
            shutil.copyfile(template, path)
        yield SqliteDatabase(path)
        return
    if not reachable(POSTGRES):
        missing("PostgreSQL on 127.0.0.1:5432")
    name = f"team_{uuid.uuid4().hex[:12]}"
    admin = PostgresDatabase("postgres")
    admin.sql(f"create database {name}" + (f" template {template}" if template else ""))
    try:
        yield PostgresDatabase(name)
    finally:
        admin.sql(f"drop database if exists {name} with (force)")


@dataclass
class Team:
    """A team's service: its folder, its release, its database, its edits."""

    project: Path
    release: str
    env: dict[str, str]
    db: Database
    has_worker: bool
    added: list[str] = field(default_factory=list)

    @property
    def seams(self) -> bool:
        return version_key(self.release) >= SEAMS_FROM

    def uv(self, *args: str, check: bool = True) -> Run:
        env = {**self.env, "DATABASE_DSN": self.db.url}
        result = run(["uv", *args], self.project, env)
        return result.check() if check else result

    def write(self, relative: str, text: str) -> None:
        path = self.project / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        self.added.append(relative)

    # ------------------------------------------------------------ edits

    def add_invoices(self) -> None:
        """The team's own domain, registered where its release said."""
        self.write("app/invoices/__init__.py", INVOICES_INIT)
        self.write("app/invoices/models.py", INVOICES_MODELS)
        self.write("app/invoices/router.py", INVOICES_ROUTER)
        self.write("tests/invoices/__init__.py", "")
        self.write("tests/invoices/test_router.py", INVOICES_TEST)
        if self.has_worker:
            self.write("app/invoices/tasks.py", INVOICES_TASKS)
            if version_key(self.release) >= TASKS_FIXTURE_FROM:
                self.add_sending()
        api = self.api_module()
        text = api.read_text()
        api.write_text(with_import(text, ROUTER_IMPORT, "fastapi") + router_line(text))
        models = self.project / "app" / "models.py"
        models.write_text(with_import(models.read_text(), MODEL_IMPORT, "sqlmodel"))
        if self.seams:
            self.plug_in()
        elif self.has_worker:
            # Before the seams, WORKER_MODULES named the task modules.
            (self.project / ".env").write_text(
                "WORKER_MODULES=app.publications.tasks,app.invoices.tasks\n"
            )

    def add_sending(self) -> None:
        """A route that sends the team's task, and the test of both."""
        router = self.project / "app" / "invoices" / "router.py"
        model = "from app.invoices.models import Invoice\n"
        text = router.read_text().replace(model, model + SEND_IMPORTS)
        router.write_text(text + SEND_ROUTE)
        self.write("tests/invoices/test_tasks.py", INVOICES_TASK_TEST)

    def plug_in(self) -> None:
        """From v0.7.0: middleware and task as a plugin, a settings group."""
        plugins = self.project / "app" / "plugins.py"
        tasks = '["app.invoices.tasks"]' if self.has_worker else "[]"
        text = plugins.read_text().replace(
            "from app.plugin import Plugin\n",
            PLUGIN_IMPORTS + "from app.plugin import Plugin\n",
        )
        text = re.sub(
            r"PLUGINS: list\[Plugin\] = \[\]\n", "PLUGINS: list[Plugin] = [\n]\n", text
        )
        text = text.replace(
            "PLUGINS: list[Plugin] = [\n",
            "PLUGINS: list[Plugin] = [\n" + PLUGIN.format(tasks=tasks),
        )
        plugins.write_text(text)
        own = self.project / "app" / "own_settings.py"
        text = own.read_text().replace(
            "from pydantic import BaseModel\n",
            "from pydantic import BaseModel, Field\n",
        )
        text = text.replace(
            "\n\nclass OwnSettings(BaseModel):",
            INVOICES_SETTINGS + "\n\nclass OwnSettings(BaseModel):",
        )
        text = text.replace(
            '    """The service\'s own groups of settings (none yet)."""\n',
            '    """The service\'s own groups of settings."""\n\n'
            "    invoices: InvoiceSettings = InvoiceSettings()\n",
        )
        own.write_text(text)

    def edit_template_files(self) -> None:
        """Edits that the template's files take (merged by updates)."""
        pyproject = self.project / "pyproject.toml"
        text = pyproject.read_text()
        anchor = '    "greenlet>=3.5",\n'
        assert anchor in text
        pyproject.write_text(text.replace(anchor, anchor + DEPENDENCY))
        (self.project / OPTIONAL_FILE).unlink()
        self.uv("lock", "--quiet")

    def migrate_with_data(self) -> None:
        """Migrate at the team's release, write its revision, keep rows."""
        self.uv("sync", "--locked", "--quiet")
        self.uv("run", "--frozen", "python", "-m", "app", "migrate")
        before = set(self.versions())
        self.uv(
            "run",
            "--frozen",
            "alembic",
            "revision",
            "--autogenerate",
            "-m",
            "add invoices",
        )
        (revision,) = set(self.versions()) - before
        self.added.append(revision)
        # The team makes it pass its gates, as its CI asks: releases before
        # v0.6.0 wrote a type mypy does not know, and before v0.7.0 nothing
        # formatted it (Alembic's hooks do now).
        path = self.project / revision
        path.write_text(
            path.read_text().replace(
                "sqlmodel.sql.sqltypes.AutoString", "sqlmodel.AutoString"
            )
        )
        for tool in (
            ["ruff", "check", "--fix", "--quiet"],
            ["isort", "--quiet"],
            ["black", "--quiet"],
        ):
            self.uv("run", "--frozen", *tool, revision)
        self.uv("run", "--frozen", "python", "-m", "app", "migrate")
        self.db.sql(
            "insert into invoices (number, amount_cents)"
            " values ('INV-1', 100), ('INV-2', 250)"
        )
        self.db.sql(
            "insert into items (name, description, created_at, updated_at) values"
            " ('kept', 'a row of the example', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        )

    def resolve_keeping_its_lines(self, name: str) -> None:
        """Resolve a conflict as the team would: the release's side, with
        the team's own lines added again."""
        path = self.project / name
        theirs = re.sub(
            r"^<<<<<<< before updating\n.*?^=======\n(.*?)^>>>>>>> after updating\n",
            r"\1",
            path.read_text(),
            flags=re.MULTILINE | re.DOTALL,
        )
        theirs = re.sub(
            r"^\|\|\|\|\|\|\| last update\n.*?(?=^=======)",
            "",
            theirs,
            flags=re.M | re.S,
        )
        if ROUTER_IMPORT not in theirs:
            theirs = with_import(theirs, ROUTER_IMPORT, "fastapi")
        if ROUTER_INCLUDE not in theirs and ROUTER_LISTED not in theirs:
            theirs += router_line(theirs)
        path.write_text(theirs)

    # ------------------------------------------------------------ reading

    def api_module(self) -> Path:
        moved = self.project / "app" / "api" / "v1.py"
        return moved if moved.exists() else self.project / "app" / "api.py"

    def versions(self) -> list[str]:
        folder = self.project / "migrations" / "versions"
        return sorted(str(p.relative_to(self.project)) for p in folder.glob("*.py"))

    def snapshot(self) -> dict[str, str]:
        """The team's own files, as they are now."""
        return {name: (self.project / name).read_text() for name in self.added}

    def after_update(
        self, kept: dict[str, str], example: bool, target: tuple[int, ...]
    ) -> list[str]:
        """What is wrong after an update to `target` (and `python -m app
        migrate`)."""
        problems = []

        def expect(condition: bool, what: str) -> None:
            if not condition:
                problems.append(what)

        for name, text in kept.items():
            path = self.project / name
            text = as_migrated(text, self.release, target)
            expect(path.is_file() and path.read_text() == text, f"{name} unchanged")
        api = self.api_module().read_text()
        expect(
            ROUTER_IMPORT in api and router_line(api) in api,
            "invoices router included",
        )
        models = (self.project / "app" / "models.py").read_text()
        expect(MODEL_IMPORT in models, "invoices model registered")
        expect(
            DEPENDENCY in (self.project / "pyproject.toml").read_text(), "dependency"
        )
        expect(
            "humanize" in (self.project / "uv.lock").read_text(), "dependency locked"
        )
        expect(
            not (self.project / OPTIONAL_FILE).exists(),
            f"{OPTIONAL_FILE} stays deleted",
        )
        for folder in EXAMPLE_FILES[:1]:
            expect(
                (self.project / folder).is_dir() is example,
                f"{folder} present: {example}",
            )
        self.uv("sync", "--locked", "--quiet")
        migrated = self.uv(
            "run", "--frozen", "python", "-m", "app", "migrate", check=False
        )
        expect(migrated.returncode == 0, f"python -m app migrate: {migrated.output}")
        expect(
            self.db.sql("select number from invoices order by number")
            == [("INV-1",), ("INV-2",)],
            "the team's rows are kept",
        )
        tables = self.db.tables()
        if example:
            expect(
                self.db.sql("select name from items") == [("kept",)],
                "the example's row",
            )
        else:
            expect(
                not {"items", "item_publications"} & tables,
                "the example's tables dropped",
            )
        expect("processed_messages" in tables, "the template's table")
        heads = self.uv("run", "--frozen", "alembic", "heads").output
        named = sorted(
            line.split()[0] for line in heads.splitlines() if "(head)" in line
        )
        expect(
            len(named) == 2 and sum(h.startswith("template_") for h in named) == 1,
            f"alembic heads: the template's and the service's ({named})",
        )
        return problems


def with_import(text: str, line: str, after_module: str) -> str:
    """`line` added to the first-party imports, sorted as isort sorts them:
    before the example's, else in a block of its own after `after_module`."""
    example = re.search(r"^from app\.items\b.*$", text, re.MULTILINE)
    if example:
        return text[: example.start()] + line + text[example.start() :]
    anchor = re.search(rf"^from {after_module} import .*\n\n", text, re.MULTILINE)
    assert anchor, text
    return text[: anchor.end()] + line + "\n" + text[anchor.end() :]
