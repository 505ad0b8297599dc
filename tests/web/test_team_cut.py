"""The team lead sees where the week's ranking was cut: counts, legal duties and the cut-off score, in Danish and English."""

from __future__ import annotations

from datetime import date

from routing.flags import BelowCapacity, TeamCut

AS_OF = date(2026, 11, 1)


def _cut(app) -> None:
    below = BelowCapacity(
        as_of=AS_OF, person="c0ffee00c0ffee00", target="child", team="familie-nord", rank=4, priority=3,
        ranking_value=0.09, score=17, probability=0.09, model_version="tidlig-child/3", rules_version="r",
        rule_ids=("child-high-score",), members=("c0ffee00c0ffee00",),
    )
    cuts = [TeamCut("familie-nord", capacity=3, candidates=40, shown=3, legal_duty=1, below=37, cutoff_score=19, cutoff_value=0.21)]
    app.state.store.save_flags("run-1", [], below=[below], cuts=cuts)


def test_the_team_page_shows_the_cut_of_the_latest_ranking(app, web):
    client = web.logged_in(app, "lars")
    assert "Ingen kørsel har endnu rangeret teamets markeringer." in client.get("/team").text

    _cut(app)
    page = client.get("/team").text
    assert "Under kapaciteten denne uge" in page and "Grænsescore (den sidste på listen)" in page
    for shown in ("<dd>40</dd>", "<dd>37</dd>", "<dd>19</dd>", "<dd>1</dd>"):
        assert shown in page
    # Nobody below capacity is named on the page: they are not flags.
    assert "c0ffee00c0ffee00" not in page

    client.get("/language/en?next=/team")
    page = client.get("/team").text
    assert "Below capacity this week" in page and "Cut-off score (the last on the list)" in page


def test_a_flag_on_the_list_for_a_legal_duty_says_so_and_why(app, web):
    from dataclasses import replace

    from routing.flags import FlagDraft, Reason

    duty = Reason(
        rule_id="child-repeated-notifications", title_da="Gentagne underretninger", title_en="Repeated notifications",
        text_da="2 underretninger det seneste år", text_en="2 notifications in the last year", priority=2,
        legal_duty="Kommunen skal vurdere hver underretning.",
    )
    flag = FlagDraft(
        as_of=AS_OF, person="d0d0d0d0d0d0d0d0", target="child", team="familie-nord", priority=2, rank=4, queued=False,
        score=2, probability=0.01, model_version="m/1", rules_version="r", reasons=(duty,), ranking_value=0.11,
    )
    [flag_id] = app.state.store.save_flags("run-1", [flag])
    assert app.state.store.get_flag(flag_id, viewer="test", purpose="test").reasons == (duty,)
    page = web.logged_in(app, "mette").get(f"/flags/{flag_id}").text
    assert "Lovpligt: på listen uanset teamets kapacitet." in page and "Kommunen skal vurdere hver underretning." in page
    plain = replace(flag, person="e0e0e0e0e0e0e0e0", reasons=(replace(duty, legal_duty=None),))
    [plain_id] = app.state.store.save_flags("run-1", [plain])
    assert "Lovpligt" not in web.logged_in(app, "mette").get(f"/flags/{plain_id}").text
