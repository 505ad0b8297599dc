"""The data snapshot a run reads: one hash over every registered extract, files or database tables."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from sources.readers import EXTENSIONS, is_database
from sources.registry import Source


def snapshot(location: Path | str, sources: Iterable[Source]) -> str:
    """SHA-256 over each source's extract: a folder's files, or a database URL's tables (see table_snapshot)."""
    if is_database(location):
        return table_snapshot(str(location), sources)
    return file_snapshot(Path(location), sources)


def file_snapshot(folder: Path, sources: Iterable[Source]) -> str:
    """SHA-256 over each source's name, file name and file bytes (read in chunks; sizes and times are not enough).

    A source without a file is hashed as absent, so the run goes on to fail on it with the reader's message.
    """
    digest = hashlib.sha256()
    for source in sorted(sources, key=lambda s: s.name):
        for path in (Path(folder) / f"{source.file}{ext}" for ext in EXTENSIONS):
            if path.is_file():
                digest.update(f"{source.name}\0{path.name}\0{path.stat().st_size}\0".encode())
                with path.open("rb") as file:
                    while chunk := file.read(1 << 20):
                        digest.update(chunk)
            else:
                digest.update(f"{source.name}\0{path.name}\0absent\0".encode())
    return digest.hexdigest()


# Per table, computed inside PostgreSQL so a register is not sent over the network twice a night:
# the row count and two sums of 64-bit slices of each row's MD5 (every column, as text). Sums do not
# depend on row order, which a table does not have; any changed, added or removed row changes them.
_TABLE_DIGEST = """
SELECT count(*),
       coalesce(sum(('x' || substr(h, 1, 16))::bit(64)::bigint::numeric), 0),
       coalesce(sum(('x' || substr(h, 17, 16))::bit(64)::bigint::numeric), 0)
FROM (SELECT md5(t::text) AS h FROM {table} AS t) AS rows
"""


def table_snapshot(url: str, sources: Iterable[Source]) -> str:
    """SHA-256 over each source's table in the database's current schema: its columns and types, and a digest of its rows.

    A missing table is hashed as absent, so the run goes on to fail on it with the reader's message;
    a server that cannot be reached is an OSError, as for an unreadable folder.
    """
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    digest = hashlib.sha256()
    try:
        with engine.connect() as conn:
            for source in sorted(sources, key=lambda s: s.name):
                columns = conn.execute(
                    sa.text("SELECT column_name, data_type FROM information_schema.columns "
                            "WHERE table_name = :table AND table_schema = current_schema() ORDER BY ordinal_position"),
                    {"table": source.file},
                ).tuples().all()
                digest.update(f"{source.name}\0{source.file}\0".encode())
                if not columns:
                    digest.update(b"absent\0")
                    continue
                digest.update(repr(columns).encode())
                table = conn.dialect.identifier_preparer.quote(source.file)
                rows, low, high = conn.execute(sa.text(_TABLE_DIGEST.format(table=table))).one()
                digest.update(f"\0{rows}\0{low}\0{high}\0".encode())
    except sa.exc.OperationalError as exc:
        shown = engine.url.render_as_string(hide_password=True)
        raise OSError(f"{shown}: cannot read the extract tables for the run's data snapshot ({exc.orig}); check sources.database in the config and that the server is up.") from exc
    finally:
        engine.dispose()
    return digest.hexdigest()
