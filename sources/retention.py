"""Retention: delete what is past each source's retention_days; counts are reported, never contents.

An extract row is past retention when its event date is more than retention_days before the day
the job runs. Rows whose event date cannot be read are kept: nothing tells how old they are, and
validation quarantines them with the reason. Quarantine entries in the casework store are deleted
by the caller's `record` (casework sits below sources in the pipeline), from runs before the same cutoff.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from sources.readers import EXTENSIONS, SEPARATORS, ExtractError, count_file, declared_rows, decode, encoding_of, is_database, locate
from sources.registry import Source

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retained:
    """What retention deleted for one source: counts only."""

    source: str
    cutoff: date
    rows_deleted: int
    quarantine_rows_deleted: int


def cutoff_for(source: Source, today: date) -> date:
    """The first event date still kept: today less the source's retention_days."""
    return today - timedelta(days=source.retention_days)


def apply_retention(
    location: Path | str, sources: Iterable[Source], today: date, record: Callable[[str, date, int], int],
) -> list[Retained]:
    """Prune every source's extract; record(source, cutoff, rows_deleted) deletes its stored quarantine entries, audits and counts them."""
    done = []
    for source in sources:
        cutoff = cutoff_for(source, today)
        rows = prune_extract(location, source, cutoff)
        done.append(Retained(source.name, cutoff, rows, record(source.name, cutoff, rows)))
        log_retained(done[-1])
    return done


def log_retained(retained: Retained) -> None:
    """One log line of counts for a source; never a row's contents."""
    log.info("event=retention.applied source=%s cutoff=%s rows_deleted=%d quarantine_rows_deleted=%d",
             retained.source, retained.cutoff, retained.rows_deleted, retained.quarantine_rows_deleted)


def prune_extract(location: Path | str, source: Source, cutoff: date) -> int:
    """Delete the source's extract rows with an event date before cutoff (file rewritten atomically, or table rows); how many."""
    if is_database(location):
        return _prune_table(str(location), source, cutoff)
    folder = Path(location)
    if folder.is_dir() and not any((folder / f"{source.file}{ext}").is_file() for ext in EXTENSIONS):
        return 0  # nothing delivered, nothing kept
    path = locate(folder, source)
    if path.suffix == ".parquet":
        frame = pl.read_parquet(path)
        kept = _kept(frame, path, source, cutoff)
        if kept.height < frame.height:
            _replace(path, lambda tmp: kept.write_parquet(tmp))
        deleted = frame.height - kept.height
    else:
        deleted = _prune_csv(path, source, cutoff)
    declared = declared_rows(path, source)
    if deleted and declared is not None:
        # The register's count must keep describing the file, or the next run would take it for cut short.
        _replace(count_file(path), lambda tmp: tmp.write_text(f"{declared - deleted}\n", encoding="ascii"))
    return deleted


def _kept(frame: pl.DataFrame, path: Path, source: Source, cutoff: date) -> pl.DataFrame:
    if source.event_date not in frame.columns:
        raise ExtractError(
            f"{path}: no column '{source.event_date}', so retention cannot tell how old its rows are; "
            f"ask {source.owner} for a corrected extract (sources check names what is wrong)."
        )
    when = event_dates(frame.get_column(source.event_date))
    return frame.filter(when.is_null() | (when >= cutoff))


def event_dates(values: pl.Series) -> pl.Series:
    """Event dates as dates, written YYYY-MM-DD or DD-MM-YYYY or typed; null where unreadable."""
    if values.dtype == pl.Date:
        return values
    if isinstance(values.dtype, pl.Datetime):
        return values.dt.date()
    text = values.cast(pl.String).str.strip_chars()
    return pl.coalesce(text.str.to_date("%Y-%m-%d", strict=False), text.str.to_date("%d-%m-%Y", strict=False))


def _prune_csv(path: Path, source: Source, cutoff: date) -> int:
    raw = path.read_bytes()
    # Written back in the encoding and with the line endings it came in: a Latin-1 export stays
    # Latin-1 for whoever reads it next.
    encoding = encoding_of(path, raw)
    text = decode(path, raw)
    ending = "\r\n" if "\r\n" in text else "\r" if "\r" in text and "\n" not in text else "\n"
    text = text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")
    if not text.strip():
        return 0
    header = text.split("\n", 1)[0]
    separator = max(SEPARATORS, key=header.count)
    frame = pl.read_csv(text.encode("utf-8"), separator=separator, infer_schema=False)
    delivered = {name.strip(): name for name in frame.columns}  # the header is written back as it came
    kept = _kept(frame.rename({name: clean for clean, name in delivered.items()}), path, source, cutoff).rename(delivered)
    if kept.height < frame.height:
        _replace(path, lambda tmp: tmp.write_bytes(kept.write_csv(separator=separator, line_terminator=ending).encode(encoding)))
    return frame.height - kept.height


def _replace(path: Path, write: Callable[[Path], object]) -> None:
    # Written beside it and renamed over it: a crash leaves the old file or the new one, never half of one.
    tmp = path.with_name(f".{path.name}.retention")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _prune_table(url: str, source: Source, cutoff: date) -> int:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            quote = conn.dialect.identifier_preparer.quote
            table, column = quote(source.file), quote(source.event_date)
            kind = conn.execute(
                sa.text("SELECT data_type FROM information_schema.columns "
                        "WHERE table_name = :table AND column_name = :column AND table_schema = current_schema()"),
                {"table": source.file, "column": source.event_date},
            ).scalar()
            if kind is None:
                return 0  # no table (or no event dates) for this source: nothing kept
            if kind == "date" or kind.startswith("timestamp"):
                return conn.execute(sa.text(f"DELETE FROM {table} WHERE CAST({column} AS date) < :cutoff"), {"cutoff": cutoff}).rowcount
            # Text dates are read the way validation reads them, in Python; the table is locked meanwhile
            # so the row addresses (ctid) stay valid until the delete.
            conn.execute(sa.text(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE"))
            rows = conn.execute(sa.text(f"SELECT ctid::text, CAST({column} AS text) FROM {table}")).all()
            found = pl.DataFrame(rows, schema={"ctid": pl.String, "event": pl.String}, orient="row")
            old = found.filter(event_dates(found["event"]) < cutoff)["ctid"].to_list()
            if old:
                conn.execute(sa.text(f"DELETE FROM {table} WHERE ctid = ANY(CAST(:old AS tid[]))"), {"old": old})
            return len(old)
    except sa.exc.OperationalError as exc:
        raise OSError(f"{source.file}: cannot reach the extracts database ({exc.orig}); check sources.database and that the server is up.") from exc
    finally:
        engine.dispose()
