"""The casework store: runs, row accounting, idempotent flags, logged views and checked decisions."""

from __future__ import annotations

import threading
from datetime import date, timedelta

import pytest

from audit.log import read, verify
from casework.decisions import DECISIONS, DecisionConflict
from casework.store import Store, flags
from routing.flags import FlagDraft, Reason

AS_OF = date(2026, 11, 1)
LATER = date.today() + timedelta(days=30)


@pytest.fixture
def store(database_url):
    store = Store.from_url(database_url)
    store.create_schema()
    yield store
    store.close()


@pytest.fixture
def run(store):
    store.start_run("run-1", AS_OF, "nightly")
    return "run-1"


def draft(person, *, as_of=AS_OF, team="familie-nord", rank=1, queued=False, rule_id="underretninger"):
    reason = Reason(
        rule_id=rule_id,
        title_da="Gentagne underretninger",
        title_en="Repeated notifications",
        text_da="3 underretninger det seneste år",
        text_en="3 notifications in the last year",
        priority=2,
        values={"count": 3, "window_days": 365},
    )
    return FlagDraft(
        as_of=as_of, person=person, target="child", team=team, priority=2, rank=rank, queued=queued,
        score=14, probability=0.31, model_version="risk@7", rules_version="2026.11", reasons=(reason,),
    )


def kinds(store):
    return [entry.kind for entry in read(store.engine)]


def test_create_schema_is_idempotent(store):
    store.create_schema()
    store.create_schema()


def test_run_lifecycle_is_stored_and_audited(store, run):
    store.finish_run(run, "succeeded", {"flags": 12, "queued": 3})

    stored = store.get_run(run)
    assert (stored.status, stored.flow, stored.as_of) == ("succeeded", "nightly", AS_OF)
    assert stored.counts == {"flags": 12, "queued": 3}
    assert stored.finished_at >= stored.started_at
    assert kinds(store) == ["run.started", "run.finished"]
    with pytest.raises(ValueError, match="not running"):
        store.finish_run(run, "succeeded", {})
    with pytest.raises(ValueError, match="already exists"):
        store.start_run(run, AS_OF, "nightly")


def test_a_failed_run_can_be_started_again(store, run):
    store.fail_run(run, "validate", "extract for 010190-1234 truncated")
    failed = store.get_run(run)
    assert (failed.status, failed.failed_stage) == ("failed", "validate")
    assert "010190-1234" not in failed.error
    assert "010190-1234" not in read(store.engine, kind="run.failed")[0].payload["error"]

    store.start_run(run, AS_OF, "nightly")

    assert store.get_run(run).status == "running"
    store.fail_run(run, "score", "boom")
    with pytest.raises(ValueError, match="would mix two runs: use a new run_id"):
        store.start_run(run, AS_OF, "monthly")


def test_finish_run_refuses_failed_as_a_status(store, run):
    with pytest.raises(ValueError, match="fail_run"):
        store.finish_run(run, "failed", {})


def test_unknown_run_is_a_lookup_error(store):
    with pytest.raises(LookupError, match="no run with id 'nope'; call start_run first"):
        store.save_flags("nope", [draft("P00001")])


def test_source_check_with_lost_rows_is_refused_with_the_numbers(store, run):
    with pytest.raises(ValueError, match=r"10 rows in, but 7 valid \+ 2 quarantined = 9 \(1 unaccounted for\)"):
        store.record_source_check(run, "skole_fravaer", 10, 7, 2, quarantine_rows=[])

    assert store.list_source_checks(run) == []
    assert "source.validated" not in kinds(store)


def test_source_check_stores_accounting_and_quarantine(store, run):
    def bad(row_number, column, expectation, reason, **value):
        return dict(
            file="fravaer.csv", row_number=row_number, column=column, expectation=expectation, reason=reason, **value
        )

    bad_rows = [
        bad(4, "days", "between", "negative", value="-3"),
        bad(4, "person", "not_null", "missing", value=None),
        bad(9, None, "unique", "duplicate row"),  # value may be left out
    ]
    store.record_source_check(run, "skole_fravaer", 10, 8, 2, quarantine_rows=bad_rows)

    [check] = store.list_source_checks(run)
    assert (check.rows_in, check.rows_valid, check.rows_quarantined) == (10, 8, 2)
    quarantined = store.list_quarantine(run, source="skole_fravaer")
    assert [(row.row_number, row.column, row.value) for row in quarantined] == [
        (4, "days", "-3"),
        (4, "person", None),
        (9, None, None),
    ]
    assert read(store.engine, kind="source.validated")[0].payload["rows_quarantined"] == 2


def test_cpr_numbers_are_blanked_out_of_quarantine_entries(store, run):
    row = dict(file="noter.csv", row_number=3, column="note", expectation="in_set",
               reason="note 'ring 040313 1001' is not one of A, B", value="ring 040313\u20131001")
    store.record_source_check(run, "noter", 5, 4, 1, quarantine_rows=[row])

    [kept] = store.list_quarantine(run)
    assert (kept.reason, kept.value) == ("note 'ring [CPR fjernet]' is not one of A, B", "ring [CPR fjernet]")


def test_quarantine_rows_must_match_the_count_and_shape(store, run):
    row = {"file": "f.csv", "row_number": 1, "column": "x", "expectation": "e", "reason": "r"}
    with pytest.raises(ValueError, match="2 rows counted as quarantined, but quarantine_rows name 1"):
        store.record_source_check(run, "s", 5, 3, 2, quarantine_rows=[row])
    with pytest.raises(ValueError, match=r"unknown keys \['cpr'\]"):
        store.record_source_check(run, "s", 5, 4, 1, quarantine_rows=[{**row, "cpr": "x"}])


def test_save_flags_is_idempotent_per_as_of_and_person(store, run):
    first = store.save_flags(run, [draft("P00001"), draft("P00002", rank=2), draft("P00003", rank=3)])
    store.start_run("run-2", AS_OF, "nightly")
    rerun = store.save_flags("run-2", [draft("P00001"), draft("P00002", rank=2), draft("P00004", rank=4)])
    next_month = store.save_flags("run-2", [draft("P00001", as_of=date(2026, 12, 1))])

    assert len(first) == 3 and len(rerun) == 1 and len(next_month) == 1
    assert len(set(first + rerun + next_month)) == 5
    assert len(store.list_flags()) == 5
    created = read(store.engine, kind="flag.created")
    assert sorted(entry.payload["flag_id"] for entry in created) == sorted(first + rerun + next_month)
    assert created[0].payload["rule_ids"] == ["underretninger"]


def test_save_flags_is_all_or_nothing(store, run, monkeypatch):
    """A failure on the last flag of a batch leaves none of the batch, nor their audit events."""
    import casework.store as module

    real = module.FlagCreated
    calls = []

    def failing(*args, **kwargs):
        calls.append(args)
        if len(calls) == 3:
            raise OSError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "FlagCreated", failing)
    with pytest.raises(OSError):
        store.save_flags(run, [draft("P00001"), draft("P00002", rank=2), draft("P00003", rank=3)])
    assert store.list_flags() == [] and read(store.engine, kind="flag.created") == []
    monkeypatch.setattr(module, "FlagCreated", real)
    assert len(store.save_flags(run, [draft("P00001"), draft("P00002", rank=2), draft("P00003", rank=3)])) == 3
    assert verify(store.engine).ok


def test_the_run_key_is_recorded_and_found(store, run):
    key = dict(snapshot="a" * 64, rules_version="children@1#abc")
    store.set_run_key(run, **key, model_version="m/1")
    store.finish_run(run, "completed", {"flags_total": 0})
    store.start_run("run-2", AS_OF, "nightly")
    store.set_run_key("run-2", **key)

    found = store.runs_with_key(AS_OF, "nightly", **key)
    assert [(r.run_id, r.status, r.model_version) for r in found] == [("run-1", "completed", "m/1"), ("run-2", "running", None)]
    assert store.runs_with_key(AS_OF, "nightly", **key, model_version="m/1")[0].snapshot == "a" * 64
    assert store.runs_with_key(AS_OF, "nightly", snapshot="b" * 64, rules_version="children@1#abc") == []
    with pytest.raises(ValueError, match="not running"):
        store.set_run_key(run, model_version="m/2")
    with pytest.raises(ValueError, match="unknown run key"):
        store.set_run_key("run-2", colour="blue")


def test_save_flags_refuses_the_same_person_twice_in_one_batch(store, run):
    with pytest.raises(ValueError, match="one flag per person"):
        store.save_flags(run, [draft("P00001"), draft("P00001", rank=2)])
    assert store.list_flags() == []


def test_list_flags_orders_and_filters(store, run):
    store.save_flags(run, [
        draft("P1", rank=2), draft("P2", rank=1), draft("P3", rank=3, queued=True),
        draft("P4", team="voksen-syd"), draft("P5", as_of=date(2026, 12, 1)),
    ])

    assert [flag.person for flag in store.list_flags()] == ["P5", "P2", "P4", "P1", "P3"]
    assert [flag.person for flag in store.list_flags(team="familie-nord", as_of=AS_OF)] == ["P2", "P1", "P3"]
    assert [flag.person for flag in store.list_flags(team="familie-nord", include_queued=False)] == ["P5", "P2", "P1"]
    assert store.list_flags(status="dismissed") == []
    with pytest.raises(ValueError, match="open, accepted, dismissed, deferred"):
        store.list_flags(status="closed")


def test_get_flag_returns_reasons_and_logs_the_view(store, run):
    [flag_id] = store.save_flags(run, [draft("P00042")])

    flag = store.get_flag(flag_id, viewer="Mette Hansen", purpose="review")

    assert flag.person == "P00042" and flag.status == "open" and flag.decisions == ()
    assert flag.reasons == draft("P00042").reasons
    assert (flag.score, flag.probability, flag.model_version) == (14, 0.31, "risk@7")
    [viewed] = read(store.engine, kind="flag.viewed")
    assert viewed.actor == "Mette Hansen"
    assert viewed.payload == {"flag_id": flag_id, "person": "P00042", "purpose": "review"}
    with pytest.raises(ValueError, match="purpose"):
        store.get_flag(flag_id, viewer="Mette Hansen", purpose="")


def test_unknown_flag_is_a_lookup_error(store):
    with pytest.raises(LookupError, match="no flag with id 999"):
        store.get_flag(999, viewer="Mette", purpose="review")
    with pytest.raises(LookupError, match="no flag with id 999"):
        store.decide(999, "accept", reason=None, by="Mette")


def test_decide_updates_status_and_is_audited(store, run):
    accepted, deferred = store.save_flags(run, [draft("P1"), draft("P2", rank=2)])

    store.decide(accepted, "accept", reason=None, by="Mette")
    decision = store.decide(deferred, "defer", reason="venter på skolens udtalelse", by="Jonas", defer_until=LATER)

    assert (decision.decision, decision.defer_until, decision.by) == ("defer", LATER, "Jonas")
    assert [flag.status for flag in store.list_flags()] == ["accepted", "deferred"]
    assert store.get_flag(deferred, viewer="Jonas", purpose="follow-up").decisions == (decision,)
    decided = read(store.engine, kind="flag.decided")
    assert [(entry.actor, entry.payload["decision"]) for entry in decided] == [("Mette", "accept"), ("Jonas", "defer")]
    assert decided[1].payload["defer_until"] == LATER.isoformat()
    assert verify(store.engine).ok


@pytest.mark.parametrize(
    ("decision", "options", "message"),
    [
        ("close", {"reason": "x"}, "use one of: accept, dismiss, defer"),
        ("dismiss", {"reason": "  ", "reason_code": "known_case"}, "to dismiss a flag, give a reason"),
        ("dismiss", {"reason": "kendt sag"}, "give a reason code; use one of: known_case, no_concern"),
        ("dismiss", {"reason": "kendt sag", "reason_code": "busy"}, "unknown reason code 'busy'; use one of: known_case"),
        ("accept", {"reason": None, "reason_code": "known_case"}, "reason code only goes with 'dismiss'"),
        ("defer", {"reason": None, "defer_until": LATER}, "to defer a flag, give a reason"),
        ("defer", {"reason": "later"}, "give the date to look at it again"),
        ("defer", {"reason": "later", "defer_until": date(2020, 1, 1)}, "not in the future"),
        ("accept", {"reason": None, "defer_until": LATER}, "only goes with 'defer'"),
        ("dismiss", {"reason": "mor er 010190-1234", "reason_code": "other"}, "CPR"),
        ("accept", {"reason": None, "by": ""}, "name of the caseworker"),
    ],
)
def test_decide_refuses_invalid_decisions(store, run, decision, options, message):
    [flag_id] = store.save_flags(run, [draft("P1")])

    with pytest.raises(ValueError, match=message):
        store.decide(flag_id, decision, **{"by": "Mette", **options})

    assert store.list_flags()[0].status == "open"
    assert "flag.decided" not in kinds(store)


def test_a_decision_and_its_event_commit_together(store, run):
    [flag_id] = store.save_flags(run, [draft("P1")])

    with pytest.raises(ValueError, match="CPR"):
        store.decide(flag_id, "accept", reason=None, by="0101901234")  # refused by the audit log itself

    flag = store.get_flag(flag_id, viewer="Mette", purpose="review")
    assert (flag.status, flag.decisions) == ("open", ())


def test_concurrent_views_and_decisions_keep_the_chain(store, run):
    flag_ids = store.save_flags(run, [draft(f"P{n}", rank=n) for n in range(1, 9)])
    errors = []

    def caseworker(flag_id):
        try:
            store.get_flag(flag_id, viewer=f"worker-{flag_id}", purpose="review")
            store.decide(flag_id, "dismiss", reason="kendt sag", reason_code="known_case", by=f"worker-{flag_id}")
        except Exception as exc:  # surfaced below: a thread's exception is otherwise lost
            errors.append(exc)

    workers = [threading.Thread(target=caseworker, args=(flag_id,)) for flag_id in flag_ids]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert errors == []
    assert {flag.status for flag in store.list_flags()} == {"dismissed"}
    result = verify(store.engine)
    assert result.ok, result.problem
    assert result.checked == 1 + 8 + 8 + 8  # run started, created, viewed, decided


def test_a_flag_keeps_its_evidence_with_dates_and_nothing_else(store, run):
    row = dict(person="P1", feature="notifications_365d", source="notifications",
               event_date=date(2026, 9, 2), known_date=date(2026, 9, 20))
    with_rows, without = store.save_flags(run, [draft("P1"), draft("P2", rank=2)], evidence={"P1": [row]})

    assert store.get_flag(with_rows, viewer="Mette", purpose="review").evidence == (row,)
    assert store.get_flag(without, viewer="Mette", purpose="review").evidence == ()
    with pytest.raises(ValueError, match="use exactly: person, feature, source, event_date, known_date"):
        store.save_flags(run, [draft("P3", rank=3)], evidence={"P3": [dict(row, notifier="school")]})


def test_a_deferral_ends_on_its_date_and_a_new_decision_clears_it(store, run):
    [flag_id] = store.save_flags(run, [draft("P1")])
    store.decide(flag_id, "defer", reason="venter på skolens udtalelse", by="Jonas", defer_until=LATER)

    flag = store.get_flag(flag_id, viewer="Jonas", purpose="follow-up")
    assert flag.deferred_until == LATER
    assert not flag.due_again(LATER - timedelta(days=1))
    assert flag.due_again(LATER) and flag.due_again(LATER + timedelta(days=1))

    store.decide(flag_id, "accept", reason=None, by="Jonas", version=flag.version)
    accepted = store.get_flag(flag_id, viewer="Jonas", purpose="follow-up")
    assert accepted.deferred_until is None and not accepted.due_again(LATER)


def test_a_decision_on_a_stale_version_is_refused_and_names_who_decided(store, run):
    [flag_id] = store.save_flags(run, [draft("P1")])
    seen = store.get_flag(flag_id, viewer="Mette", purpose="review").version
    store.decide(flag_id, "accept", reason=None, by="Mette", version=seen)

    with pytest.raises(DecisionConflict, match=r"already decided by Mette at \d{4}-\d\d-\d\d \d\d:\d\d .*\(accept\); nothing was changed") as refused:
        store.decide(flag_id, "dismiss", reason="kendt sag", reason_code="known_case", by="Jonas", version=seen)

    assert (refused.value.conflict.seen_version, refused.value.conflict.current_version) == (seen, seen + 1)
    flag = store.get_flag(flag_id, viewer="Mette", purpose="review")
    assert (flag.status, [d.by for d in flag.decisions], flag.version) == ("accepted", ["Mette"], seen + 1)
    assert [e.actor for e in read(store.engine, kind="flag.decided")] == ["Mette"]
    # Having seen the decision, a person may change it.
    store.decide(flag_id, "dismiss", reason="kendt sag", reason_code="known_case", by="Jonas", version=flag.version)
    assert store.list_flags()[0].status == "dismissed"


def test_without_a_version_only_an_undecided_flag_may_be_decided(store, run):
    open_flag, decided, due = store.save_flags(run, [draft("P1"), draft("P2", rank=2), draft("P3", rank=3)])
    store.decide(decided, "defer", reason="venter", by="Mette", defer_until=LATER)
    store.decide(due, "defer", reason="venter", by="Mette", defer_until=LATER)
    with store.engine.begin() as conn:  # the deferral's date has come: the flag is open again
        conn.execute(flags.update().where(flags.c.id == due).values(deferred_until=date.today() - timedelta(days=1)))

    store.decide(open_flag, "accept", reason=None, by="Jonas")
    store.decide(due, "accept", reason=None, by="Jonas")
    with pytest.raises(DecisionConflict, match="already decided by Mette"):
        store.decide(decided, "accept", reason=None, by="Jonas")

    assert [f.status for f in store.list_flags()] == ["accepted", "deferred", "accepted"]


RACES = 40


@pytest.mark.parametrize("named_version", [True, False], ids=["version-named", "version-read"])
def test_of_decisions_racing_on_one_flag_exactly_one_wins_and_none_is_lost(store, run, named_version):
    flag_ids = store.save_flags(run, [draft(f"P{n}", rank=n) for n in range(RACES)])
    choices = [("accept", {}), ("dismiss", {"reason": "kendt sag", "reason_code": "known_case"}),
               ("defer", {"reason": "venter", "defer_until": LATER})]
    lost, errors = 0, []
    for flag_id in flag_ids:
        start = threading.Barrier(len(choices))
        won: list[str] = []

        def caseworker(decision, options):
            try:
                start.wait()
                store.decide(flag_id, decision, by=f"worker-{decision}", version=1 if named_version else None,
                             **{"reason": None, **options})
                won.append(decision)
            except DecisionConflict:
                pass
            except Exception as exc:  # surfaced below: a thread's exception is otherwise lost
                errors.append(exc)

        workers = [threading.Thread(target=caseworker, args=choice) for choice in choices]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        flag = store.get_flag(flag_id, viewer="auditor", purpose="check")
        # Lost: a decision accepted whose effect was overwritten, or a flag whose state is not its one decision's.
        lost += max(len(won) - 1, 0) + (len(flag.decisions) != 1 or flag.status != DECISIONS[flag.decisions[0].decision])

    assert errors == []
    assert lost == 0
    assert len(read(store.engine, kind="flag.decided")) == RACES
    assert verify(store.engine).ok


def test_below_capacity_and_each_teams_cut_are_kept_once_with_the_flags_and_audited(store, run):
    from routing.flags import BelowCapacity, TeamCut

    below = BelowCapacity(
        as_of=AS_OF, person="P9", target="child", team="familie-nord", rank=2, priority=3, ranking_value=0.12,
        score=17, probability=0.12, model_version="risk@7", rules_version="2026.11", rule_ids=("child-high-score",),
        members=("P9",),
    )
    cuts = [
        TeamCut("familie-nord", capacity=1, candidates=2, shown=1, legal_duty=0, below=1, cutoff_score=14, cutoff_value=0.31),
        TeamCut("familie-syd", capacity=8, candidates=0, shown=0, legal_duty=0, below=0, cutoff_score=None, cutoff_value=None),
    ]
    shown = draft("P1")
    store.save_flags(run, [shown], below=[below], cuts=cuts)
    store.start_run("run-2", AS_OF, "nightly")
    store.save_flags("run-2", [shown], below=[below], cuts=cuts)  # a rerun of the date adds nothing twice

    assert store.below_capacity(team="familie-nord") == [below]
    assert store.below_capacity(team="familie-syd") == []
    assert store.capacity_cuts(as_of=AS_OF) == cuts
    cut_events = [e for e in read(store.engine) if e.kind == "team.capacity_cut"]
    assert [(e.payload["team"], e.payload["below"], e.payload["cutoff_score"]) for e in cut_events] == [
        ("familie-nord", 1, 14), ("familie-syd", 0, None),
    ]
    # Below capacity is not a flag: it holds nobody back as an open flag the next night.
    assert [f.person for f in store.list_flags()] == ["P1"]
    assert set(store.decision_history(AS_OF + timedelta(days=1))["person"]) == {"P1"}
    assert verify(store.engine).ok

    # AS_OF is a Sunday: what it showed used the week's capacity for that week only.
    assert store.shown_this_week(AS_OF) == {}
    assert store.shown_this_week(AS_OF + timedelta(days=1)) == {}  # a new week
    store.start_run("run-3", AS_OF - timedelta(days=2), "nightly")
    store.save_flags("run-3", [draft("P7", as_of=AS_OF - timedelta(days=2))], cuts=cuts)
    assert store.shown_this_week(AS_OF) == {"familie-nord": 1, "familie-syd": 0}


def test_the_last_accepted_delivery_counts_only_completed_nightly_runs_used_without_a_persons_acceptance(store):
    def night(run_id, rows, status, *, flow="nightly", accepted=()):
        store.start_run(run_id, AS_OF, flow)
        store.record_source_check(run_id, "school_absence", rows, rows, 0)
        if status == "failed":
            store.fail_run(run_id, "read+validate", "school_absence.csv: cut short")
        else:
            store.finish_run(run_id, status, {"deliveries_accepted": list(accepted)})

    assert store.accepted_rows() == {}
    night("full", 55_091, "completed")
    night("short-refused", 27_540, "failed")
    night("short-accepted", 27_540, "completed", accepted=["school_absence"])
    night("quality-check", 27_540, "completed", flow="data-quality")
    assert store.accepted_rows() == {"school_absence": 55_091}
    night("next", 55_200, "completed")
    assert store.accepted_rows() == {"school_absence": 55_200}


def test_accepting_a_delivery_is_audited_with_who_and_why(store, run):
    with pytest.raises(ValueError, match="give your name and a reason"):
        store.accept_delivery(run, "school_absence", "school_absence.csv", ["cut short"], by="Ole", reason=" ")
    store.accept_delivery(run, "school_absence", "school_absence.csv", ["school_absence.csv has 27,540 rows"], by="Ole",
                          reason="resten kommer i morgen, jf. 010190-1234")
    [event] = read(store.engine, kind="delivery.accepted")
    assert event.actor == "Ole"
    assert event.payload["problems"] == ["school_absence.csv has 27,540 rows"] and event.payload["as_of"] == AS_OF.isoformat()
    assert "010190-1234" not in event.payload["reason"], "a CPR number typed into the reason is blanked out"
    assert verify(store.engine).ok
