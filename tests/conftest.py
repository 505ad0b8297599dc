"""Shared fixtures: a private Tidlig home per test and a throwaway PostgreSQL database per run."""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import pytest

# One thread per numeric library: on a busy 2-core machine oversubscription makes fits crawl.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# Prefect keeps its temporary API's database here, away from the user's own Prefect home.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="tidlig-prefect-")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
# The audit key and checkpoints of the tests' throwaway stores stay out of the working folder's .tidlig.
os.environ["TIDLIG_AUDIT_DIR"] = tempfile.mkdtemp(prefix="tidlig-audit-")

POSTGRES_URL = os.environ.get(
    "TIDLIG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(autouse=True)
def _own_mlflow_tracking_uri():
    """mlflow.set_tracking_uri also sets MLFLOW_TRACKING_URI in the environment: one test's store (or a
    server that does not answer) must not become the next test's."""
    saved = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if saved is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = saved


@pytest.fixture
def tidlig_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh TIDLIG_HOME (data, SQLite store, MLflow store) for one test."""
    home = tmp_path / "tidlig-home"
    monkeypatch.setenv("TIDLIG_HOME", str(home))
    monkeypatch.delenv("TIDLIG_DATABASE_URL", raising=False)
    monkeypatch.delenv("TIDLIG_AUDIT_DIR", raising=False)  # the key and checkpoints go with the home, as by default
    return home


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of a database created for this test run and dropped after it.

    Fails (never skips) under CI when the server cannot be reached; skips with the reason locally.
    """
    import sqlalchemy as sa

    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"tidlig_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        message = f"PostgreSQL at {POSTGRES_URL} is not reachable ({exc.orig}); set TIDLIG_TEST_POSTGRES_URL"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    url = sa.engine.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs twice: on SQLite and on PostgreSQL (schema dropped between tests)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tidlig.db'}"
    import sqlalchemy as sa

    url = request.getfixturevalue("postgres_url")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    return url


@pytest.fixture
def app_role(database_url):
    """A fresh PostgreSQL login role beside the store's owner, as `tidlig db grant-app-role` is given: (owner store, role, its URL)."""
    import sqlalchemy as sa

    from casework.store import Store

    owner = Store.from_url(database_url)
    owner.create_schema()
    # Roles belong to the whole server: a name of this test's own, dropped after it.
    role = f"tidlig_app_{uuid.uuid4().hex[:10]}"
    with owner.engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
    url = sa.engine.make_url(database_url).set(username=role, password=None).render_as_string(hide_password=False)
    yield owner, role, url
    owner.close()
    with owner.engine.begin() as conn:
        conn.exec_driver_sql(f"DROP OWNED BY {role}")
        conn.exec_driver_sql(f"DROP ROLE {role}")


@pytest.fixture(scope="session")
def prefect_api():
    """One temporary Prefect API for the whole test session (starting one takes ~15 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
