"""Fixtures shared by the tests of the register readers."""

from __future__ import annotations

import pytest
import sqlalchemy as sa


@pytest.fixture
def extracts_db(postgres_url):
    """The test database, emptied of extract tables before each test."""
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS school_absence"))
    yield postgres_url, engine
    engine.dispose()
