"""Storage of the key server: SQLAlchemy Core tables, engine, Alembic migrations, queries.

Domain rules live in the server's modules; this package only stores and fetches. All
times are unix seconds (integers), so SQLite and PostgreSQL behave alike.
"""

from .database import create_engine_for, migrate
from .tables import metadata

__all__ = ["create_engine_for", "metadata", "migrate"]
