"""The items API over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
from httpx import AsyncClient
from sqlmodel.ext.asyncio.session import AsyncSession

from app.items.schemas import MAX_PAGE_SIZE
from app.main import create_app
from tests.fixtures.client import client_for
from tests.fixtures.identity import ALICE, BOB, user_headers
from tests.fixtures.settings import make_settings
from tests.items.factories import create_item, item_payload

pytestmark = pytest.mark.anyio
ITEMS = "/api/v1/items"


async def test_create_returns_the_item_and_its_location(client: AsyncClient) -> None:
    payload = item_payload(name="Widget")

    response = await client.post(ITEMS, json=payload)

    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "Widget"
    assert body["description"] == payload["description"]
    assert response.headers["location"] == f"{ITEMS}/{body['id']}"
    assert (await client.get(response.headers["location"])).json() == body


async def test_create_rejects_unknown_fields(client: AsyncClient) -> None:
    response = await client.post(ITEMS, json=item_payload(owner="someone"))

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == ["body.owner"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", ""), ("name", "x" * 101), ("description", "x" * 1001)],
)
async def test_create_bounds_field_sizes(
    client: AsyncClient, field: str, value: str
) -> None:
    response = await client.post(ITEMS, json=item_payload(**{field: value}))

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == f"body.{field}"


async def test_duplicate_name_is_a_conflict(client: AsyncClient) -> None:
    await client.post(ITEMS, json=item_payload(name="twice"))

    response = await client.post(ITEMS, json=item_payload(name="twice"))

    assert response.status_code == 409
    assert response.json()["title"] == "Conflict"


async def test_list_pages_through_items(
    client: AsyncClient, session: AsyncSession
) -> None:
    created = [await create_item(session) for _ in range(5)]

    first = (await client.get(ITEMS, params={"limit": 2})).json()
    last = (await client.get(ITEMS, params={"limit": 2, "offset": 4})).json()

    assert first["total"] == 5
    assert [i["id"] for i in first["items"]] == [c.id for c in created[:2]]
    assert [i["id"] for i in last["items"]] == [created[4].id]
    assert (first["limit"], last["offset"]) == (2, 4)


@pytest.mark.parametrize("limit", [0, MAX_PAGE_SIZE + 1])
async def test_list_bounds_the_page_size(client: AsyncClient, limit: int) -> None:
    response = await client.get(ITEMS, params={"limit": limit})

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "query.limit"


async def test_get_missing_item_is_a_problem_404(client: AsyncClient) -> None:
    response = await client.get(f"{ITEMS}/999999")

    assert response.status_code == 404
    body = response.json()
    assert body["detail"] == "item 999999 does not exist"
    assert body["instance"] == f"{ITEMS}/999999"
    assert body["request_id"] == response.headers["x-request-id"]


async def test_update_changes_only_given_fields(
    client: AsyncClient, session: AsyncSession
) -> None:
    item = await create_item(session, description="before")

    response = await client.patch(f"{ITEMS}/{item.id}", json={"name": "renamed"})

    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["description"]) == ("renamed", "before")
    assert body["updated_at"] >= body["created_at"]
    assert body["updated_at"].endswith(("Z", "+00:00"))


async def test_update_missing_item_is_404(client: AsyncClient) -> None:
    response = await client.patch(f"{ITEMS}/424242", json={"name": "x"})

    assert response.status_code == 404


async def test_delete_removes_the_item(
    client: AsyncClient, session: AsyncSession
) -> None:
    item = await create_item(session)

    deleted = await client.delete(f"{ITEMS}/{item.id}")

    assert deleted.status_code == 204
    assert (await client.get(f"{ITEMS}/{item.id}")).status_code == 404


async def test_update_refuses_a_null_name(
    client: AsyncClient, session: AsyncSession
) -> None:
    item = await create_item(session)

    response = await client.patch(f"{ITEMS}/{item.id}", json={"name": None})

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.name"


async def test_another_users_item_answers_404(tmp_path: Path) -> None:
    # Users are told apart by their tokens (AUTH_MODE=none has one user).
    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    settings = make_settings(
        url, database={"dsn": url, "migrate_on_start": True}, auth={"mode": "jwt"}
    )
    alice, bob = user_headers(settings, ALICE), user_headers(settings, BOB)
    async with client_for(create_app(settings)) as client:
        created = await client.post(ITEMS, json={"name": "a"}, headers=alice)
        path = f"{ITEMS}/{created.json()['id']}"
        answers = [
            await client.get(path, headers=bob),
            await client.patch(path, json={"name": "theirs"}, headers=bob),
            await client.delete(path, headers=bob),
        ]
        listed = (await client.get(ITEMS, headers=bob)).json()
        mine = await client.get(path, headers=alice)

    assert [a.status_code for a in answers] == [404, 404, 404]
    assert listed["total"] == 0
    assert mine.json()["name"] == "a"


async def test_the_items_routes_are_in_the_api_document(client: AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]

    assert set(paths[ITEMS]) == {"get", "post"}
    assert set(paths[ITEMS + "/{item_id}"]) == {"get", "patch", "delete"}
