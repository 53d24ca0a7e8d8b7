"""Removing the example (migrations_copier/_remove_example.py, run on every
update of a service answered `example=false`): its folders go, its lines
leave the seams and the owner's stay, and a revision after the service's
heads drops its tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.migration_fixtures import revision_file, tree, write
from tests.support.migrations import MIGRATIONS, load, load_lib

REMOVE: Any = load(MIGRATIONS / "_remove_example.py")
LIB: Any = load_lib()
# app/models.py as v0.1.0 and v0.7.0 wrote it (with an owner's model), and
# without the example; app/api/v1.py as v0.10.0 wrote it.
MODELS_V0_1_0 = tree("remove_example/v0.1.0")["app/models.py"]
MODELS_V0_7_0 = tree("remove_example/v0.7.0")["app/models.py"]
MODELS_WITHOUT_EXAMPLE = tree("remove_example/removed")["app/models.py"]
API_V0_10_0 = tree("remove_example/v0.10.0")["app/api/v1.py"]


@pytest.mark.parametrize(
    ("models", "expected"),
    [
        (MODELS_V0_1_0, MODELS_WITHOUT_EXAMPLE),
        (
            MODELS_V0_7_0,
            MODELS_WITHOUT_EXAMPLE.replace(
                '__all__ = ["metadata"]', '__all__ = [\n    "metadata",\n]'
            ),
        ),
    ],
    ids=["one-line", "listed"],
)
def test_removing_the_example_keeps_the_owners_lines_in_the_seams(
    tmp_path: Path, models: str, expected: str
) -> None:
    write(
        tmp_path,
        {
            "app/models.py": models,
            "app/items/router.py": "",
            "tests/items/test_router.py": "",
            "app/invoices/router.py": "",
        },
    )

    REMOVE.main(tmp_path)

    assert (tmp_path / "app/models.py").read_text() == expected
    assert not (tmp_path / "app/items").exists()
    assert not (tmp_path / "tests/items").exists()
    assert (tmp_path / "app/invoices/router.py").exists()


@pytest.mark.parametrize("owners", ["", "    invoices_router,\n"])
def test_removing_the_example_takes_its_routers_out_of_the_list(
    tmp_path: Path, owners: str
) -> None:
    """The routers the copy listed go; the owner's stay; an emptied list
    stays a list."""
    api = API_V0_10_0.replace(
        "    publications_router,\n", "    publications_router,\n" + owners
    )
    write(tmp_path, {"app/api/v1.py": api, "app/items/router.py": ""})

    REMOVE.main(tmp_path)

    text = (tmp_path / "app/api/v1.py").read_text()
    listed = "[\n    invoices_router,\n]" if owners else "[]"
    assert f"routers: list[APIRouter] = {listed}\n" in text
    assert "items_router" not in text
    assert "publications_router" not in text
    assert "routers.append(invoices_router)\n" in text
    compile(text, "v1.py", "exec")


def test_removing_the_example_drops_its_tables_after_the_services_heads(
    tmp_path: Path,
) -> None:
    versions = tmp_path / "migrations" / "versions"
    versions.mkdir(parents=True)
    (versions / "0001.py").write_text(revision_file("0001", "None"))
    (versions / "0003.py").write_text(revision_file("0003", '"0001"'))
    (versions / "abc.py").write_text(revision_file("abc123", '"0003"'))

    first = REMOVE.drop_revision(tmp_path)
    second = REMOVE.drop_revision(tmp_path)

    graph = LIB.revision_graph(versions)
    assert LIB.heads_of(graph) == ["remove_example"]
    assert graph["remove_example"] == ("abc123",)
    assert len(first) == 1
    assert second == []
