"""Small, pure Jinja filters used by copier.yml validators and defaults."""

from __future__ import annotations

import re
import unicodedata

from jinja2 import Environment
from jinja2.ext import Extension

SLUG_RE = re.compile(r"^[a-z][a-z0-9-]*$")
# Deliberately simple: one @, a dotted domain, no spaces. Deliverability is not
# something a template can check.
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")


def slugify(value: str) -> str:
    """Turn free text such as "Payments API" into "payments-api"."""
    ascii_text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug.lstrip("0123456789-") or "service"


def is_slug(value: str) -> bool:
    """Whether value is a valid project slug."""
    return bool(SLUG_RE.fullmatch(value))


def is_email(value: str) -> bool:
    """Whether value looks like an e-mail address."""
    return bool(EMAIL_RE.fullmatch(value))


def py_string(value: str) -> str:
    """A Python string literal for value, quoted the way black would leave it."""
    body = value.replace("\\", "\\\\").replace("\n", "\\n")
    if '"' in value and "'" not in value:
        return f"'{body}'"
    return '"' + body.replace('"', '\\"') + '"'


class ServiceFilters(Extension):
    """Registers the filters above in Copier's Jinja environment."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["slugify"] = slugify
        environment.filters["is_slug"] = is_slug
        environment.filters["is_email"] = is_email
        environment.filters["py_string"] = py_string
