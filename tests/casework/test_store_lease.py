"""One run of a flow per as-of date at a time: the lease is held while its holder lives, and only then."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from casework.store import RunInProgress, Store

AS_OF = date(2026, 11, 1)
REPO = Path(__file__).parents[2]


@pytest.fixture
def store(database_url):
    store = Store.from_url(database_url)
    store.create_schema()
    yield store
    store.close()


def test_a_second_holder_is_refused_with_the_run_in_progress_and_when_it_started(store, database_url):
    other = Store.from_url(database_url)
    with store.lease("nightly", AS_OF):
        store.start_run("run-1", AS_OF, "nightly")
        with pytest.raises(RunInProgress) as busy:
            with other.lease("nightly", AS_OF):
                pytest.fail("two holders of one lease")
        message = str(busy.value)
        assert "another nightly run for 2026-11-01 is in progress" in message
        assert re.search(r"run run-1, started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d CE(S)?T", message), message
        # Other dates and other flows have leases of their own.
        with other.lease("nightly", date(2026, 11, 2)), other.lease("retrain", AS_OF):
            pass
    with other.lease("nightly", AS_OF):  # let go at the end of the block
        pass
    other.close()


def test_the_lease_of_a_killed_holder_is_free_at_once(store, database_url):
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time; from datetime import date; from casework.store import Store\n"
            "with Store.from_url(sys.argv[1]).lease('nightly', date(2026, 11, 1)):\n"
            "    print('held', flush=True); time.sleep(600)"
        ), database_url],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held", "the holder did not take the lease"
        with pytest.raises(RunInProgress, match="it is just starting"):  # no run recorded yet
            with store.lease("nightly", AS_OF):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The kernel closes a killed process's files at once; PostgreSQL ends its session as soon as it
    # reads the closed connection, which on a busy machine can take a moment.
    deadline = time.monotonic() + 30
    while True:
        try:
            with store.lease("nightly", AS_OF):
                break
        except RunInProgress:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
