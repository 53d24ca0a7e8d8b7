"""The example's routes against the OpenAPI document (schemathesis), as the
template's are fuzzed (tests/test_api_fuzz.py): copy this for your routes."""

from __future__ import annotations

from typing import Any

from app.main import create_app
from tests.test_api_fuzz import FUZZ, SETTINGS, fuzz

schema = fuzz(create_app(SETTINGS), r"^/api/v1/item")


@schema.parametrize()
@FUZZ
def test_every_example_operation_honours_its_schema(case: Any) -> None:
    case.call_and_validate()
