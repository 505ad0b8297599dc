"""The nightly routing uses the capacity a team lead set in the casework store."""

from datetime import date

import polars as pl

from flows.nightly import route_flags
from routing.suppression import empty_history
from rules.conditions import PERSON_SCHEMA
from rules.engine import evaluate, load_rules
from tidlig.settings import load_config

AS_OF = date(2026, 11, 1)


def test_a_team_leads_capacity_wins_over_the_routing_table():
    ruleset = load_rules()
    rows = [{"person": f"p{i}", "target": "child", "age_years": 10, "district": "Nord", "score": 20} for i in range(5)]
    frame = pl.DataFrame([dict.fromkeys(PERSON_SCHEMA) | row for row in rows], schema=PERSON_SCHEMA)
    hits = evaluate(ruleset, frame)
    families = pl.DataFrame(schema={"parent": pl.String, "child": pl.String})

    def on_the_list(capacities, used=None):
        routing = route_flags.fn(hits, frame, ruleset, None, AS_OF, families, empty_history(), capacities, load_config().ranking.policy(), used)
        return len(routing.flags)

    assert on_the_list({}) == 5  # the routing table's 8 for familie-nord
    assert on_the_list({"familie-nord": 2}) == 2
    # The capacity is the week's: flags earlier nights of the week put on the list use it up.
    assert on_the_list({}, {"familie-nord": 6}) == 2
    assert on_the_list({"familie-nord": 2}, {"familie-nord": 5}) == 0
