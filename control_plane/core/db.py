"""SQLAlchemy engine, sessions and the declarative base."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import MetaData, create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from control_plane.core.settings import get_settings

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base class of every control-plane table."""

    metadata = MetaData(naming_convention=NAMING)


def sqlalchemy_url(libpq_url: str) -> str:
    """Turn a ``postgresql://`` URL into the psycopg 3 SQLAlchemy form."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if libpq_url.startswith(prefix):
            return "postgresql+psycopg://" + libpq_url[len(prefix) :]
    raise ValueError("CANOPY_DATABASE_URL must be a postgresql:// URL")


def libpq_url(url: str) -> str:
    """Turn a SQLAlchemy psycopg URL back into a plain libpq URL."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def database_url() -> str:
    """The configured control-plane database URL (libpq form)."""
    url = get_settings().database_url
    if not url:
        raise RuntimeError("CANOPY_DATABASE_URL is not set; run `canopy run` for the embedded default")
    return url


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    """The process-wide engine."""
    return create_engine(sqlalchemy_url(database_url()), pool_pre_ping=True, pool_size=10, max_overflow=10)


@lru_cache(maxsize=1)
def _session_factory() -> sessionmaker[Session]:
    # Every table must be mapped before a flush sorts them by foreign key, whichever entry point
    # (API, worker, ``canopy create-account``) opened the session.
    import control_plane.core.all_models  # noqa: F401

    return sessionmaker(get_engine(), expire_on_commit=False)


def plan_for_values(session: Session) -> None:
    """Plan this transaction's statements for their parameter values, never with a generic plan.

    psycopg prepares a statement run five times, and PostgreSQL may then plan it once for any values: a list
    filtered by ``slug LIKE $1`` would read the whole table in page order instead of its trigram index. The list
    queries call this first (``SET LOCAL``: it ends with the transaction)."""
    session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


def new_session() -> Session:
    """A new session bound to the process-wide engine."""
    return _session_factory()()


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = new_session()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def reset_engine(**_: Any) -> None:
    """Forget the cached engine (tests and the embedded launcher change the URL)."""
    if get_engine.cache_info().currsize:
        get_engine().dispose()
    get_engine.cache_clear()
    _session_factory.cache_clear()
