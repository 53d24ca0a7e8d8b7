"""The Jinja extensions are pure functions; test them as such."""

from __future__ import annotations

import ast
import datetime

import pytest

from extensions.context import derive
from extensions.filters import is_email, is_slug, py_string, slugify


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Payments API", "payments-api"),
        ("  Édition Spéciale!  ", "edition-speciale"),
        ("3D Printing Service", "d-printing-service"),
        ("___", "service"),
    ],
)
def test_slugify_makes_valid_slugs(name: str, slug: str) -> None:
    assert slugify(name) == slug
    assert is_slug(slugify(name))


@pytest.mark.parametrize("value", ["a", "payments-api", "svc2"])
def test_is_slug_accepts(value: str) -> None:
    assert is_slug(value)


@pytest.mark.parametrize("value", ["", "A", "has space", "9lives", "under_score"])
def test_is_slug_refuses(value: str) -> None:
    assert not is_slug(value)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("a@b.io", True),
        ("first.last@corp.example", True),
        ("a@b", False),
        ("@b.io", False),
        ("a b@c.io", False),
    ],
)
def test_is_email(value: str, ok: bool) -> None:
    assert is_email(value) is ok


def test_derive_computes_tags_and_year() -> None:
    derived = derive({"python_version": "3.13"}, datetime.date(2030, 1, 2))

    assert derived == {"python_tag": "py313", "copyright_year": 2030}


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        'say "hi"',
        "it's",
        "both ' and \"",
        "back\\slash",
        "Édition",
        "two\nlines",
    ],
)
def test_py_string_is_a_python_literal_of_the_value(value: str) -> None:
    assert ast.literal_eval(py_string(value)) == value
