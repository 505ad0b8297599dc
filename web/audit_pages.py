"""The auditor's pages: the audit log and its verification, models, rules and their diffs, data quality."""

from __future__ import annotations

import difflib
import json
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from audit.cpr import REDACTED, canonical_cpr
from audit.events import AuditLogVerified, AuditLogViewed
from audit.log import append, verify
from casework.store import flags, quarantine, runs
from web import queries
from web.auth import Viewer, accounts, require
from web.citizen import pseudonym_of
from web.templating import render

router = APIRouter()
AUDITOR = "auditor"
MODEL_REPORT_HINTS = ("card", "fairness")


@router.get("/audit")
def audit_log(
    request: Request,
    viewer: Viewer = Depends(require(AUDITOR)),
    kind: str = "",
    actor: str = "",
    person: str = "",
    since: str = "",
    until: str = "",
    before: int | None = None,
) -> Response:
    """The audit log newest first, with filters; looking at it is itself logged."""
    engine = request.app.state.store.engine
    if canonical_cpr(person):
        # Searched, logged and shown as the pseudonym (the log the search is written to cannot be
        # edited); the address bar, history and the page's links no longer hold the number either.
        query = {**request.query_params, "person": pseudonym_of(request, person, {}) or REDACTED}
        return RedirectResponse(f"/audit?{urlencode(query)}", status_code=303)
    filters = dict(kind=kind.strip(), actor=actor.strip(), person=person.strip().lower(), since=since, until=until)
    with engine.begin() as conn:
        append(conn, AuditLogViewed({key: value for key, value in filters.items() if value}), actor=viewer.username)
    entries = queries.search_audit(
        engine,
        kind=filters["kind"] or None,
        actor=filters["actor"] or None,
        person=filters["person"] or None,
        since=_date(since),
        until=_date(until),
        before_seq=before,
    )
    return render(
        request, "audit.html", entries=entries, kinds=queries.audit_kinds(engine), filters=filters,
        next_before=entries[-1].seq if len(entries) == queries.AUDIT_PAGE_SIZE else None, verification=None,
    )


@router.get("/audit/verify")
def audit_verify(request: Request, viewer: Viewer = Depends(require(AUDITOR))) -> Response:
    """Walk the whole hash chain and show whether the log is intact or where it was altered."""
    engine = request.app.state.store.engine
    result = verify(engine)
    with engine.begin() as conn:
        append(conn, AuditLogVerified(result.ok, result.checked, result.first_broken_seq), actor=viewer.username)
    return render(
        request, "audit.html", entries=queries.search_audit(engine), kinds=queries.audit_kinds(engine),
        filters={}, next_before=None, verification=result,
    )


@router.get("/quality")
def data_quality(request: Request, viewer: Viewer = Depends(require(AUDITOR))) -> Response:
    """Row accounting per source for recent runs, with the most frequent quarantine reasons."""
    store = request.app.state.store
    with store.engine.connect() as conn:
        recent = conn.execute(sa.select(runs).order_by(runs.c.started_at.desc()).limit(10)).all()
        flag_counts = dict(
            conn.execute(
                sa.select(flags.c.run_id, sa.func.count()).where(flags.c.run_id.in_([r.run_id for r in recent])).group_by(flags.c.run_id)
            ).all()
        )
        reasons = {
            run.run_id: conn.execute(
                sa.select(quarantine.c.source, quarantine.c.reason, sa.func.count().label("rows"))
                .where(quarantine.c.run_id == run.run_id)
                .group_by(quarantine.c.source, quarantine.c.reason)
                .order_by(sa.func.count().desc())
                .limit(10)
            ).all()
            for run in recent
        }
    checks = {run.run_id: store.list_source_checks(run.run_id) for run in recent}
    return render(
        request, "quality.html", runs=recent, checks=checks, reasons=reasons, flag_counts=flag_counts,
        data_docs=_data_docs_root(request) is not None,
    )


@router.get("/quality/docs/{path:path}")
def data_docs(path: str, request: Request, viewer: Viewer = Depends(require(AUDITOR))) -> Response:
    """Great Expectations' Data Docs (static HTML), served only to auditors."""
    root = _data_docs_root(request)
    if root is None:
        raise LookupError("no Data Docs on this server")
    target = (root / (path or "index.html")).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise LookupError(f"no Data Docs page {path!r}")
    return FileResponse(target)


@router.get("/rules")
def rules_page(request: Request, viewer: Viewer = Depends(require(AUDITOR)), old: str = "", new: str = "") -> Response:
    """The rules in use, the recorded rule versions, and a diff between two of them."""
    from rules.engine import load_rules

    try:
        ruleset = load_rules(request.app.state.rules_folder)
        load_error = None
    except Exception as exc:  # show the auditor why, rather than a blank page
        ruleset, load_error = None, str(exc)
    versions = accounts(request).rule_versions()
    names = [version for version, _, _ in versions]
    new = new if new in names else (names[0] if names else "")
    old = old if old in names else (names[1] if len(names) > 1 else "")
    diff = _diff(dict((v, files) for v, _, files in versions), old, new) if old and new and old != new else []
    return render(request, "rules.html", ruleset=ruleset, load_error=load_error, versions=versions, old=old, new=new, diff=diff)


@router.get("/models")
def models_page(request: Request, viewer: Viewer = Depends(require(AUDITOR))) -> Response:
    """Registered model versions with their aliases, metrics and reports."""
    models, error = _registered_models(request)
    with request.app.state.store.engine.connect() as conn:
        in_use = dict(
            conn.execute(sa.select(flags.c.model_version, sa.func.count()).group_by(flags.c.model_version)).all()
        )
    return render(request, "models.html", models=models, error=error, in_use=in_use)


def _registered_models(request: Request) -> tuple[list[dict[str, Any]], str | None]:
    uri = request.app.state.mlflow_tracking_uri
    if not uri:
        return [], None
    try:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        found = []
        for model in client.search_registered_models():
            aliases_by_version: dict[str, list[str]] = {}
            for alias, version in (model.aliases or {}).items():
                aliases_by_version.setdefault(str(version), []).append(alias)
            versions = []
            for version in sorted(client.search_model_versions(f"name='{model.name}'"), key=lambda v: -int(v.version)):
                run = client.get_run(version.run_id) if version.run_id else None
                metrics = dict(sorted(run.data.metrics.items())) if run else {}
                versions.append(
                    dict(
                        version=version.version,
                        created=version.creation_timestamp,
                        aliases=aliases_by_version.get(str(version.version), []),
                        deployed=_deployed_lists(metrics),
                        deployed_dates=metrics.get(f"{DEPLOYED_PREFIX}dates", 0),
                        gate=version.tags.get("fairness_gate", "unknown"),
                        # The deployed list's numbers have their own table; per team they are in the card.
                        metrics={k: v for k, v in metrics.items() if not k.startswith(DEPLOYED_PREFIX)},
                        params=dict(sorted(run.data.params.items())) if run else {},
                        tags={k: v for k, v in sorted((run.data.tags if run else {}).items()) if not k.startswith("mlflow.")},
                        reports=_reports(client, version.run_id) if run else [],
                    )
                )
            found.append(dict(name=model.name, description=model.description, versions=versions))
        return found, None
    except Exception as exc:  # an unreachable registry is shown to the auditor, not hidden
        return [], f"{type(exc).__name__}: {exc}"


DEPLOYED_PREFIX = "deployed."
DEPLOYED_LISTS = ("deployed", "model", "points", "oracle")


def _deployed_lists(metrics: dict[str, float]) -> list[dict[str, Any]]:
    """The deployed evaluation's lists from a run's metrics: precision and recall at capacity with intervals."""
    rows = []
    for name in DEPLOYED_LISTS:
        values = {
            f"{m}{end}": metrics.get(f"{DEPLOYED_PREFIX}{name}.{m}_at_capacity{end}")
            for m in ("precision", "recall") for end in ("", "_low", "_high")
        }
        if values["precision"] is not None:
            rows.append(dict(name=name, **values))
    return rows


def _reports(client: Any, run_id: str) -> list[dict[str, Any]]:
    """Model cards and fairness reports logged with a run: Markdown shown as text, JSON as tables."""
    reports = []
    for artifact in _walk_artifacts(client, run_id):
        lowered = artifact.lower()
        if not any(hint in lowered for hint in MODEL_REPORT_HINTS) or not lowered.endswith((".md", ".json", ".txt")):
            continue
        local = Path(client.download_artifacts(run_id, artifact))
        content = local.read_text(encoding="utf-8")
        data = None
        if lowered.endswith(".json"):
            try:
                data = json.loads(content)
            except ValueError:
                data = None
        reports.append(dict(name=artifact, kind="fairness" if "fairness" in lowered else "card", text=content, data=data))
    return reports


def _walk_artifacts(client: Any, run_id: str, path: str | None = None, depth: int = 0) -> list[str]:
    found = []
    for item in client.list_artifacts(run_id, path):
        if item.is_dir and depth < 2 and item.path != "model":
            found.extend(_walk_artifacts(client, run_id, item.path, depth + 1))
        elif not item.is_dir:
            found.append(item.path)
    return found


def _diff(files_by_version: dict[str, dict[str, str]], old: str, new: str) -> list[dict[str, Any]]:
    old_files, new_files = files_by_version[old], files_by_version[new]
    changes = []
    for name in sorted(set(old_files) | set(new_files)):
        lines = list(
            difflib.unified_diff(
                old_files.get(name, "").splitlines(), new_files.get(name, "").splitlines(),
                fromfile=f"{old}/{name}", tofile=f"{new}/{name}", lineterm="", n=2,
            )
        )
        if lines:
            changes.append(dict(file=name, lines=lines))
    return changes


def _data_docs_root(request: Request) -> Path | None:
    home = request.app.state.home
    if home is None:
        return None
    root = (Path(home) / "gx" / "uncommitted" / "data_docs" / "local_site").resolve()
    return root if (root / "index.html").is_file() else None


def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None

