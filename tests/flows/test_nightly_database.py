"""The nightly flow through Prefect reading its registers from PostgreSQL tables (sources.database)."""

from __future__ import annotations

import re
import uuid
from datetime import date

import pytest
import sqlalchemy as sa
import yaml

from casework.store import Store
from sources.registry import load_registry
from sources.snapshot import snapshot
from sources.synth import SynthSpec, generate
from tidlig.settings import DEFAULTS_FILE

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.postgres]
AS_OF = date(2026, 11, 1)


@pytest.fixture
def registers(postgres_url, tmp_path, monkeypatch):
    """A tiny municipality's registers as typed tables in their own schema, and a config reading them."""
    schema = f"registers_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    url = sa.engine.make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    engine = sa.create_engine(url)
    defaults = yaml.safe_load(DEFAULTS_FILE.read_text(encoding="utf-8"))
    town = generate(SynthSpec(persons=1000, seed=13, start=defaults["synth"]["start"], end=defaults["synth"]["end"]))
    for name, frame in town.extracts.items():
        frame.write_database(name, connection=engine)
    # Two training dates, 15 months apart, instead of eleven: the champion trains quickly, and this test is about reading.
    config = tmp_path / "tidlig.yaml"
    defaults["sources"]["database"] = url
    defaults["model"]["training_as_of"] = [date(2024, 2, 1), date(2025, 5, 1)]
    config.write_text(yaml.safe_dump(defaults), encoding="utf-8")
    monkeypatch.setenv("TIDLIG_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TIDLIG_DATABASE_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield url, engine, config, tmp_path / "home"
    engine.dispose()
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def test_the_nightly_run_reads_tables_and_keys_the_run_on_their_contents(registers, prefect_api, promote_a_champion):
    from flows.nightly import NightlyParams, nightly

    url, engine, config, home = registers
    promote_a_champion(None, config=config)
    first = nightly(NightlyParams(as_of=AS_OF, config=config))
    store = Store.from_url(f"sqlite:///{home / 'tidlig.db'}")
    flags = store.list_flags(as_of=AS_OF)
    assert first.flags_created == len(flags) > 0
    assert all(re.fullmatch(r"[0-9a-f]{16}", f.person) and f.reasons for f in flags)
    done = store.get_run(first.run_id)
    assert done.snapshot == snapshot(url, load_registry().values())

    again = nightly(NightlyParams(as_of=AS_OF, config=config))
    assert again.same_key_as == first.run_id and again.flags_created == 0, "unchanged tables: nothing to do"

    with engine.begin() as conn:  # a register corrects one row overnight
        conn.execute(sa.text("UPDATE notifications SET known_date = known_date + 1 "
                             "WHERE ctid = (SELECT min(ctid) FROM notifications)"))
    assert snapshot(url, load_registry().values()) != done.snapshot, "a changed table is a new key: the next run does the work again"
