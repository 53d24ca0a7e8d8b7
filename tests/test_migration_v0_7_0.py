"""v0.7.0's migration (migrations_copier/v0_7_0.py): the API module the owner
now owns keeps their routers and loses the router header, revision 0002
creates the worker's table only where it is missing, and two heads in the
service's revisions are merged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.migration_fixtures import revision_file, tree
from tests.support.migrations import MIGRATIONS, load, load_lib

V0_7_0: Any = load(MIGRATIONS / "v0_7_0.py")
LIB: Any = load_lib()
# app/api/v1.py as v0.6.0 wrote it (with an owner's router), and as v0.7.0
# leaves it.
API_V0_6_0 = tree("v0_7_0/v0.6.0")["app/api/v1.py"]
API_V0_7_0 = tree("v0_7_0/v0.7.0")["app/api/v1.py"]


def service_with_api(tmp_path: Path, text: str) -> Path:
    (tmp_path / "app" / "api").mkdir(parents=True)
    (tmp_path / "app" / "api" / "v1.py").write_text(text)
    return tmp_path


def test_the_api_module_keeps_the_owners_routers_and_loses_the_guard(
    tmp_path: Path,
) -> None:
    project = service_with_api(tmp_path, API_V0_6_0)

    first = LIB.apply_rewrites(project, V0_7_0.CHANGES.rewrites)
    second = LIB.apply_rewrites(project, V0_7_0.CHANGES.rewrites)

    assert (project / "app/api/v1.py").read_text() == API_V0_7_0
    assert first == ["rewrote app/api/v1.py"]
    assert second == []


def test_an_api_module_from_before_authentication_loses_its_prefix(
    tmp_path: Path,
) -> None:
    old = API_V0_6_0.replace(
        "from app.auth import AUTHENTICATED\nfrom app.errors import problem_responses\n",
        "",
    ).replace(
        "router = APIRouter(\n    prefix=API_PREFIX,\n    dependencies=[AUTHENTICATED],\n"
        "    responses=problem_responses(400, 401, 413, 422, 503),\n)\n",
        "router = APIRouter(prefix=API_PREFIX)\n",
    )
    project = service_with_api(tmp_path, old)

    LIB.apply_rewrites(project, V0_7_0.CHANGES.rewrites)

    assert (project / "app/api/v1.py").read_text() == API_V0_7_0


def test_an_import_the_owners_code_still_uses_is_kept(tmp_path: Path) -> None:
    uses = API_V0_6_0 + "router.include_router(extra, dependencies=[AUTHENTICATED])\n"
    project = service_with_api(tmp_path, uses)

    LIB.apply_rewrites(project, V0_7_0.CHANGES.rewrites)

    text = (project / "app/api/v1.py").read_text()
    assert "from app.auth import AUTHENTICATED\n" in text
    assert "from app.errors import problem_responses\n" not in text
    assert "router = APIRouter()\n" in text


def test_a_router_header_the_owner_changed_is_reported_not_touched(
    tmp_path: Path,
) -> None:
    changed = API_V0_6_0.replace("422, 503", "422, 503, 504")
    project = service_with_api(tmp_path, changed)

    done = LIB.apply_rewrites(project, V0_7_0.CHANGES.rewrites)

    assert (project / "app/api/v1.py").read_text().count("prefix=API_PREFIX") == 1
    assert any("left app/api/v1.py as its owner changed it" in line for line in done)


def test_the_worker_table_revision_creates_it_only_where_it_is_missing(
    tmp_path: Path,
) -> None:
    publications = '    op.create_table(\n        "item_publications",\n    )\n'
    old = (
        f"{V0_7_0.CREATE_WORKER_TABLE}{publications}\n\n"
        f"def downgrade() -> None:\n{V0_7_0.DROP_WORKER_TABLE}"
    )
    path = tmp_path / V0_7_0.WORKER_TABLE
    path.parent.mkdir(parents=True)
    path.write_text(old)

    LIB.apply_rewrites(tmp_path, V0_7_0.CHANGES.rewrites)
    once = path.read_text()
    LIB.apply_rewrites(tmp_path, V0_7_0.CHANGES.rewrites)

    assert once == (
        f"{V0_7_0.CREATE_WORKER_TABLE_IF_MISSING}{publications}\n\n"
        f"def downgrade() -> None:\n{V0_7_0.DROP_PUBLICATIONS}"
    )
    assert path.read_text() == once


def test_two_heads_in_the_services_revisions_are_merged_once(tmp_path: Path) -> None:
    versions = tmp_path / "migrations" / "versions"
    versions.mkdir(parents=True)
    (versions / "0001.py").write_text(revision_file("0001", "None"))
    (versions / "0002.py").write_text(revision_file("0002", '"0001"'))
    (versions / "0003.py").write_text(revision_file("0003", '"0002"'))
    (versions / "abc.py").write_text(revision_file("abc123", '"0002"'))

    first = LIB.merge_service_heads(tmp_path, "0.7.0")
    second = LIB.merge_service_heads(tmp_path, "0.7.0")

    graph = LIB.revision_graph(versions)
    (head,) = LIB.heads_of(graph)
    assert graph[head] == ("0003", "abc123")
    assert [p.name for p in versions.glob("*merge*")] == [f"20261205_{head}.py"]
    assert len(first) == 1
    assert second == []


def test_one_head_needs_no_merge(tmp_path: Path) -> None:
    versions = tmp_path / "migrations" / "versions"
    versions.mkdir(parents=True)
    (versions / "0001.py").write_text(revision_file("0001", "None"))
    (versions / "0003.py").write_text(revision_file("0003", '"0001"'))

    assert LIB.merge_service_heads(tmp_path, "0.7.0") == []
    assert len(list(versions.glob("*.py"))) == 2
