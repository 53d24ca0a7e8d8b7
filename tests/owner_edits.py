"""What a real team does to its service between template updates, and how
each edit must look after `copier update`: byte for byte, at the place the
template's migrations moved or renamed it to."""

from __future__ import annotations

from pathlib import Path

from tests.support import Run, run

ORDERS_INIT = '"""Orders: a domain the owner added."""\n'
ORDERS_ROUTER = '''"""HTTP routes for orders."""

from fastapi import APIRouter

router = APIRouter(prefix="/orders", tags=["orders"])


@router.get("")
async def list_orders() -> list[str]:
    """List orders."""
    return []
'''
ORDERS_TEST = '''"""The owner's own test."""

import pytest
from httpx import AsyncClient

pytestmark = pytest.mark.anyio


async def test_orders_are_listed(client: AsyncClient) -> None:
    response = await client.get("/api/v1/orders")

    assert (response.status_code, response.json()) == (200, [])
'''
IMPORT_LINE = "from app.orders.router import router as orders_router\n"
INCLUDE_LINE = "router.include_router(orders_router)\n"
PAGE_SIZE = ("MAX_PAGE_SIZE = 100\n", "MAX_PAGE_SIZE = 50\n")
DEPENDENCY = '    "humanize>=4.9",\n'
PROXIES_OLD = "SERVER_FORWARDED_ALLOW_IPS"
PROXIES_NEW = "SERVER_TRUSTED_PROXIES"
OPTIONAL_FILE = ".pre-commit-config.yaml"


def api_module(project: Path) -> Path:
    """The module that includes domain routers (it moved in v0.2.0)."""
    moved = project / "app" / "api" / "v1.py"
    return moved if moved.exists() else project / "app" / "api.py"


def proxies_variable(project: Path) -> str:
    text = (project / ".env.example").read_text()
    return PROXIES_NEW if PROXIES_NEW in text else PROXIES_OLD


def apply(project: Path, env: dict[str, str]) -> Run:
    """Make the edits; returns the owner's `uv lock`."""
    orders = project / "app" / "orders"
    orders.mkdir()
    (orders / "__init__.py").write_text(ORDERS_INIT)
    (orders / "router.py").write_text(ORDERS_ROUTER)
    (project / "tests" / "orders").mkdir()
    (project / "tests" / "orders" / "__init__.py").write_text("")
    (project / "tests" / "orders" / "test_router.py").write_text(ORDERS_TEST)

    api = api_module(project)
    text = api.read_text()
    text = text.replace(
        "from app.items.router import router as items_router\n",
        "from app.items.router import router as items_router\n" + IMPORT_LINE,
    )
    api.write_text(text + INCLUDE_LINE)

    schemas = project / "app" / "items" / "schemas.py"
    schemas.write_text(schemas.read_text().replace(*PAGE_SIZE))

    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    anchor = '    "greenlet>=3.5",\n'
    assert anchor in text
    pyproject.write_text(text.replace(anchor, anchor + DEPENDENCY))

    (project / OPTIONAL_FILE).unlink()

    variable = proxies_variable(project)
    example = project / ".env.example"
    example.write_text(
        example.read_text().replace(f"{variable}=127.0.0.1", f"{variable}=10.0.0.0/8")
    )
    (project / ".env").write_text(f"LOG_LEVEL=DEBUG\n{variable}=10.1.2.3\n")
    return run(["uv", "lock", "--quiet"], project, env).check()


def missing_after_update(project: Path) -> list[str]:
    """Every owner edit that is not where it should be after an update."""
    problems = []

    def expect(condition: bool, what: str) -> None:
        if not condition:
            problems.append(what)

    orders = project / "app" / "orders"
    expect((orders / "__init__.py").read_text() == ORDERS_INIT, "orders/__init__.py")
    expect((orders / "router.py").read_text() == ORDERS_ROUTER, "orders/router.py")
    test = project / "tests" / "orders" / "test_router.py"
    expect(test.read_text() == ORDERS_TEST, "tests/orders/test_router.py")
    api = api_module(project).read_text()
    expect(IMPORT_LINE in api and api.endswith(INCLUDE_LINE), "router included")
    schemas = (project / "app" / "items" / "schemas.py").read_text()
    expect(PAGE_SIZE[1] in schemas, "changed MAX_PAGE_SIZE")
    expect(DEPENDENCY in (project / "pyproject.toml").read_text(), "added dependency")
    expect("humanize" in (project / "uv.lock").read_text(), "dependency locked")
    expect(not (project / OPTIONAL_FILE).exists(), f"{OPTIONAL_FILE} stays deleted")
    variable = proxies_variable(project)
    expect(
        f"{variable}=10.0.0.0/8\n" in (project / ".env.example").read_text(),
        ".env.example value",
    )
    expect(
        (project / ".env").read_text() == f"LOG_LEVEL=DEBUG\n{variable}=10.1.2.3\n",
        ".env values",
    )
    return problems
