"""The team lead's page counts each flag once."""

from __future__ import annotations

import re

from web import queries


def test_team_load_counts_each_flag_once(app):
    load = queries.team_load(app.state.store.engine, "familie-nord")  # two within capacity, one queued

    assert (load.in_capacity, load.queued, load.open_total, load.deferred) == (2, 1, 3, 0)


def test_team_page_shows_the_counts_once(app, web):
    page = web.logged_in(app, "lars").get("/team")

    numbers = re.findall(r'<span class="stat-number">([^<]*)</span>', page.text)
    assert numbers == ["8", "2", "1", "3", "0"]  # capacity, within it, queued, open, deferred
