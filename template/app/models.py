"""Every table of the service, imported in one place so that
`SQLModel.metadata` is complete for alembic and the tests."""

from sqlmodel import SQLModel

from app.items.models import Item

metadata = SQLModel.metadata

__all__ = ["Item", "metadata"]
