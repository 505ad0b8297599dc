"""Read one source extract (Parquet, CSV or a PostgreSQL table) as delivered, with whole-extract checks and row numbers."""

from __future__ import annotations

import csv
import difflib
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath

import polars as pl

from audit.cpr import looks_like_cpr, redact_cpr
from sources.registry import Source

ROW_NUMBER = "row_number"
EXTENSIONS = (".parquet", ".csv")
SEPARATORS = (",", ";")
DATABASE_SCHEMES = ("postgresql+psycopg://",)


class ExtractError(ValueError):
    """A whole extract is unusable; the message names the file, the column if any, and what to do.

    A CPR number quoted from the data (a line that cannot be parsed) is blanked out: the message
    reaches logs, the audit log and Prefect's run states.
    """

    def __init__(self, message: str):
        super().__init__(redact_cpr(message))


@dataclass(frozen=True)
class Extract:
    source: str
    # The file, or database/table for a table: its name is what quarantine rows say they came from.
    path: PurePath
    frame: pl.DataFrame
    # Columns the file has but the registry does not: never loaded (least data), but reported.
    ignored_columns: tuple[str, ...] = ()
    # Data rows the register says it sent (NAME.count beside the file), when it sends a count.
    declared_rows: int | None = None


def is_database(location: Path | str) -> bool:
    """Whether extracts are read from a database URL rather than a folder."""
    return isinstance(location, str) and location.startswith(DATABASE_SCHEMES)


def read_extract(folder: Path | str, source: Source) -> Extract:
    """Read `<source.file>.parquet` or `.csv` from folder, or the table `<source.file>` from a database URL; raises ExtractError for whole-extract problems."""
    if is_database(folder):
        return read_table(str(folder), source)
    path = locate(Path(folder), source)
    frame = _read_parquet(path, source) if path.suffix == ".parquet" else _read_csv(path, source)
    if source.version and source.version not in frame.columns and frame.width:
        # A register that never sends corrections has no version column: every row is a first version.
        frame = frame.with_columns(pl.lit(1 if path.suffix == ".parquet" else "1").alias(source.version))
    ignored = _check_columns(path, frame, source)
    if frame.height == 0:
        raise ExtractError(f"{path}: the file has no data rows; ask {source.owner} for a complete extract.")
    # row_number is the data row's 1-based position in the file (a CSV row's line number less one,
    # unless a quoted value spans lines), so whoever delivered it can find a quarantined row again.
    frame = frame.select(source.column_names).with_row_index(ROW_NUMBER, offset=1)
    frame = frame.with_columns(pl.col(ROW_NUMBER).cast(pl.Int64))
    return Extract(source=source.name, path=path, frame=frame, ignored_columns=ignored, declared_rows=declared_rows(path, source))


def count_file(path: Path) -> Path:
    """Where a register puts the number of data rows it sent: NAME.count beside NAME.csv or NAME.parquet."""
    return path.with_suffix(".count")


def declared_rows(path: Path, source: Source) -> int | None:
    """The row count in the extract's count file, None when the register sent none; refuses one that is not a number."""
    counted = count_file(path)
    if not counted.exists():
        return None
    text = _read_bytes(counted, source).decode("ascii", errors="replace").strip()
    if not re.fullmatch(r"[0-9]{1,12}", text):
        raise ExtractError(
            f"{counted}: a count file must hold the number of data rows in {path.name} and nothing else; "
            f"ask {source.owner} to send it again, or remove it if the register sends no count."
        )
    return int(text)


def locate(folder: Path, source: Source) -> Path:
    """The one extract file of the source in folder; raises ExtractError when there is none or two."""
    if not folder.is_dir():
        raise ExtractError(f"{folder}: the extract folder does not exist; check the configured data folder.")
    for ext in EXTENSIONS:
        if (folder / f"{source.file}{ext}").is_dir():
            raise ExtractError(
                f"{folder / source.file}{ext}: is a folder, not a file; deliver the extract of source "
                f"'{source.name}' itself under that name (move the file out of the folder and remove the folder)."
            )
    found = [path for ext in EXTENSIONS if (path := folder / f"{source.file}{ext}").is_file()]
    if len(found) > 1:
        raise ExtractError(
            f"{found[0]} and {found[1].name} both exist for source '{source.name}': it is unclear which "
            "is current; remove the stale one."
        )
    if not found:
        present = sorted(p.name for p in folder.iterdir() if p.is_file())
        holds = ", ".join(present) if present else "no files"
        raise ExtractError(
            f"{folder / source.file}.parquet or .csv: no extract for source '{source.name}'; the folder "
            f"{folder} holds {holds}. Deliver the file under that name or correct 'file' in sources/registry.yaml."
        )
    return found[0]


def _read_bytes(path: Path, source: Source) -> bytes:
    """The file's bytes; a file the run may not read is the operator's to fix, not worth a retry."""
    try:
        return path.read_bytes()
    except PermissionError:
        raise ExtractError(
            f"{path}: cannot be read: permission denied for the user the run works as; give that user read "
            "access to the file (and its folder), then start the run again."
        ) from None
    except IsADirectoryError:
        raise ExtractError(f"{path}: is a folder, not a file; deliver the extract of source '{source.name}' itself.") from None


def _read_parquet(path: Path, source: Source) -> pl.DataFrame:
    raw = _read_bytes(path, source)
    if not raw:
        raise ExtractError(f"{path}: the file is empty (0 bytes); ask {source.owner} to deliver the extract again.")
    _refuse_other_formats(path, raw, source, expected="Parquet")
    try:
        return pl.read_parquet(raw)
    except Exception:  # polars raises several types for a damaged or non-Parquet file; its text may quote data
        raise ExtractError(
            f"{path}: cannot be read as Parquet (the file is damaged, cut short or not Parquet); ask {source.owner} "
            "to export it again."
        ) from None


# What a file named .csv sometimes really is: its first bytes tell (zip: also .xlsx workbooks).
_OTHER_FORMATS = (
    (b"PK\x03\x04", "a zip archive"),
    (b"PK\x05\x06", "an empty zip archive"),
    (b"\x1f\x8b", "a gzip-compressed file"),
    (b"PAR1", "a Parquet file"),
    (b"\xd0\xcf\x11\xe0", "an Excel workbook (.xls)"),
)


def _refuse_other_formats(path: Path, raw: bytes, source: Source, expected: str) -> None:
    for magic, kind in _OTHER_FORMATS:
        if not raw.startswith(magic) or (kind == "a Parquet file" and expected == "Parquet"):
            continue
        if kind == "a zip archive" and _is_workbook(raw):
            kind = "an Excel workbook (.xlsx)"
        if kind.startswith("an Excel"):
            todo = f"open it in the spreadsheet and save it as CSV (separated by ';') under the name {path.name}"
        elif kind == "a Parquet file":
            todo = f"rename it to {path.stem}.parquet"
        else:
            todo = f"unpack it and deliver the {expected} file it holds as {path.name}"
        raise ExtractError(f"{path}: is {kind}, not a {expected} file; {todo}.")


def _is_workbook(raw: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            return any(name.startswith("xl/") for name in archive.namelist())
    except zipfile.BadZipFile:
        return False


def _read_csv(path: Path, source: Source) -> pl.DataFrame:
    raw = _read_bytes(path, source)
    _refuse_other_formats(path, raw, source, expected="CSV")
    # Windows and old Mac exports end lines with CRLF or CR alone; read as one kind of line.
    text = decode(path, raw).replace("\r\n", "\n").replace("\r", "\n")
    ends_with_line_break = text.endswith("\n")
    # A blank line at the very end is an export artefact, not a row; blank lines inside stay
    # rows so they are quarantined where they are.
    text = text.rstrip("\n")
    if not text.strip():
        raise ExtractError(f"{path}: the file is empty; ask {source.owner} to deliver the extract again.")
    header_line, _, body = text.partition("\n")
    separator = max(SEPARATORS, key=header_line.count)
    header = [name.strip() for name in next(csv.reader([header_line], delimiter=separator))]
    if any(_looks_like_data(name) for name in header):
        raise ExtractError(
            f"{path}: the first line holds values, not column names: the header line is missing. Ask "
            f"{source.owner} to export the file with its header ({', '.join(source.column_names)})."
        )
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise ExtractError(
            f"{path}: column(s) {', '.join(duplicated)} appear more than once in the header; re-export the file."
        )
    if len(header) == 1 and len(source.columns) > 1:
        raise ExtractError(
            f"{path}: found a single column {header[0]!r} where {len(source.columns)} were expected "
            f"({', '.join(source.column_names)}): the file must be separated by ',' or ';'. Re-export it so."
        )
    if body and not ends_with_line_break:
        _refuse_cut_last_line(path, source, text, separator, len(header))
    try:
        # Every column as text, so a bad value becomes a quarantined row instead of a crash.
        return pl.read_csv(text.encode("utf-8"), separator=separator, infer_schema=False, new_columns=header)
    except pl.exceptions.PolarsError:
        # polars' own text quotes the offending value, which may be personal: say where instead.
        problem = _ragged_line(text, separator, len(header)) or _unclosed_quote(text, separator) or (
            "the rows do not follow the header; re-export the file."
        )
        raise ExtractError(f"{path}: cannot be read as CSV: {problem}") from None


def _looks_like_data(name: str) -> bool:
    """A header field shaped like a CPR number, a date or an amount: the header line is missing."""
    return looks_like_cpr(name) or bool(re.fullmatch(r"[0-9][0-9.,:/ -]*", name))


def _refuse_cut_last_line(path: Path, source: Source, text: str, separator: str, width: int) -> None:
    """A last line with fewer fields than the header and no line break after it: the transfer stopped mid-row."""
    last = text.rsplit("\n", 1)[-1]
    fields = next(csv.reader([last], delimiter=separator), [])
    if len(fields) < width:
        line = text.count("\n") + 1
        raise ExtractError(
            f"{path}: the last line (line {line}) stops after {len(fields)} of {width} fields without a line break: "
            f"the file was cut off during export or transfer and rows may be missing. Ask {source.owner} to "
            "deliver the whole file again."
        )


def _unclosed_quote(text: str, separator: str) -> str | None:
    reader = csv.reader(io.StringIO(text), delimiter=separator, strict=True)
    start = 1  # the line the row being read begins on
    try:
        for _ in reader:
            start = reader.line_num + 1
    except csv.Error:
        return f"line {start}: a quote (\") is opened but never closed; fix the quoting and export the file again."
    return None


# A UTF-8 encoded letter beyond ASCII: a lead byte and its continuation byte(s).
_UTF8_LETTER = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}")


def decode(path: Path, raw: bytes) -> str:
    """The file's text in the encoding it was written in (encoding_of)."""
    try:
        return raw.decode(encoding_of(path, raw))
    except UnicodeDecodeError:
        raise ExtractError(
            f"{path}: looks like UTF-16 text but is damaged (an odd number of bytes or a broken letter); "
            "export the file again, preferably as UTF-8."
        ) from None


def encoding_of(path: Path, raw: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 (as spreadsheets save "Unicode text"), else Windows-1252/Latin-1 as Danish systems export; never a mix."""
    utf16 = _utf16(raw)
    if utf16 is not None:
        return utf16
    if b"\x00" in raw:
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        raise ExtractError(
            f"{path}: line {line} holds a NUL byte, which no text file does: the file is damaged or not CSV; "
            "export it again as CSV text."
        )
    try:
        raw.decode("utf-8")
        return "utf-8-sig" if raw.startswith(b"\xef\xbb\xbf") else "utf-8"
    except UnicodeDecodeError as exc:
        bad_line = raw[: exc.start].count(b"\n") + 1
        bad_byte = raw[exc.start]
    utf8 = _UTF8_LETTER.search(raw)
    if utf8 is not None:
        good_line = raw[: utf8.start()].count(b"\n") + 1
        raise ExtractError(
            f"{path}: mixed encodings: line {good_line} is UTF-8 but line {bad_line} is not (byte 0x{bad_byte:02x}, "
            "Latin-1/Windows-1252?). Letters like æ, ø, å would be garbled; re-export the whole file in one "
            "encoding, preferably UTF-8."
        )
    # Windows-1252 leaves five bytes undefined; Latin-1 reads them, so nothing is lost.
    try:
        raw.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"


def _utf16(raw: bytes) -> str | None:
    """The UTF-16 codec a file is written in, by its byte order mark or by NUL bytes beside every ASCII letter."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    head = raw[:4096]
    if len(head) >= 4 and head.count(b"\x00") * 2 >= len(head) - 1:
        if head[1::2].count(b"\x00") * 2 >= len(head[1::2]):
            return "utf-16-le"
        if head[0::2].count(b"\x00") * 2 >= len(head[0::2]):
            return "utf-16-be"
    return None


def _ragged_line(text: str, separator: str, width: int) -> str | None:
    for number, row in enumerate(csv.reader(text.splitlines(), delimiter=separator), start=1):
        if len(row) > width:
            return f"line {number} has {len(row)} fields but the header has {width}; fix the quoting or the separator."
    return None


def _check_columns(path: PurePath, frame: pl.DataFrame, source: Source, delivered: list[str] | None = None) -> tuple[str, ...]:
    delivered = frame.columns if delivered is None else delivered
    missing = [name for name in source.column_names if name not in delivered]
    unexpected = [name for name in delivered if name not in source.column_names]
    if missing:
        hints = []
        for name in missing:
            close = difflib.get_close_matches(name, unexpected, n=1, cutoff=0.6)
            hints.append(f"{name} (renamed to '{close[0]}'?)" if close else name)
        seen = f"; unexpected column(s) seen: {', '.join(unexpected)}" if unexpected else ""
        raise ExtractError(
            f"{path}: missing column(s) {', '.join(hints)}{seen}. Source '{source.name}' needs "
            f"{', '.join(source.column_names)} (sources/registry.yaml): ask {source.owner} for a corrected "
            "extract, or update the registry if the format changed on purpose."
        )
    return tuple(unexpected)


# PostgreSQL column types read as they are; every other type is read as its text, so an odd value
# becomes a quarantined row and not a crash (numeric as float: polars has no use for Decimal here).
_PG_TYPES = {
    "text": pl.String, "character varying": pl.String, "character": pl.String,
    "date": pl.Date, "timestamp without time zone": pl.Datetime("us"),
    "smallint": pl.Int64, "integer": pl.Int64, "bigint": pl.Int64,
    "numeric": pl.Float64, "real": pl.Float64, "double precision": pl.Float64,
}
_PG_CASTS = {pl.String: "text", pl.Int64: "bigint", pl.Float64: "double precision"}


def read_table(url: str, source: Source) -> Extract:
    """Read the table named like the source's file from a PostgreSQL database, shaped like a file's extract.

    Text columns come as text (checked like CSV), typed ones with their type (like Parquet). A table
    has no order of its own: row N is the Nth row ordered by the source's keys and then its other
    columns, so the same rows always get the same numbers and a quarantined row can be found again.
    """
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    shown = PurePosixPath(engine.url.database or "", source.file)
    try:
        with engine.connect() as conn:
            types = dict(conn.execute(
                sa.text("SELECT column_name, data_type FROM information_schema.columns "
                        "WHERE table_name = :table AND table_schema = current_schema() ORDER BY ordinal_position"),
                {"table": source.file},
            ).tuples().all())
            if not types:
                raise ExtractError(
                    f"{shown}: no table '{source.file}' for source '{source.name}' in database {engine.url.database!r} "
                    f"(schema {conn.execute(sa.text('SELECT current_schema()')).scalar()}). Load the extract into that "
                    "table or correct 'file' in sources/registry.yaml."
                )
            frame = _query_table(conn, source, types)
    except sa.exc.OperationalError as exc:
        # An OSError, as for an unreadable file: a server that cannot be reached is worth a retry, not a broken extract.
        raise OSError(f"{shown}: cannot read from the extracts database ({exc.orig}); check sources.database in the config and that the server is up.") from exc
    finally:
        engine.dispose()
    if source.version and source.version not in frame.columns and frame.width:
        frame = frame.with_columns(pl.lit(1).alias(source.version))
    ignored = _check_columns(shown, frame, source, delivered=[*types, *([source.version] if source.version else [])])
    if frame.height == 0:
        raise ExtractError(f"{shown}: the table has no rows; ask {source.owner} for a complete extract.")
    frame = frame.select(source.column_names).with_row_index(ROW_NUMBER, offset=1)
    return Extract(source=source.name, path=shown, frame=frame.with_columns(pl.col(ROW_NUMBER).cast(pl.Int64)), ignored_columns=ignored)


def _query_table(conn, source: Source, types: dict[str, str]) -> pl.DataFrame:
    import sqlalchemy as sa

    wanted = [name for name in source.column_names if name in types]
    dtypes = {name: _PG_TYPES.get(types[name], pl.String) for name in wanted}

    def select(name: str) -> str:
        quoted = conn.dialect.identifier_preparer.quote(name)
        cast = _PG_CASTS.get(dtypes[name])
        return f"CAST({quoted} AS {cast}) AS {quoted}" if cast else quoted

    order = [conn.dialect.identifier_preparer.quote(n) for n in [*[k for k in source.keys if k in types], *wanted]]
    table = conn.dialect.identifier_preparer.quote(source.file)
    # Only the registry's columns are read (least data); the others are only named in the report.
    if not wanted:
        return pl.DataFrame()
    query = f"SELECT {', '.join(select(n) for n in wanted)} FROM {table} ORDER BY {', '.join(order)}"
    return pl.read_database(sa.text(query), conn, schema_overrides=dtypes, infer_schema_length=None)
