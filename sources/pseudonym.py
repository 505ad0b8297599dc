"""Pseudonymisation at ingest: CPR numbers become keyed hashes before anything else sees them."""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

import polars as pl

KEY_ENV = "TIDLIG_PSEUDONYM_KEY"


def load_key(home: Path) -> bytes:
    """The municipality's secret key: TIDLIG_PSEUDONYM_KEY (hex), else a key file made once in home."""
    if hex_key := os.environ.get(KEY_ENV):
        try:
            return bytes.fromhex(hex_key)
        except ValueError:
            raise ValueError(f"{KEY_ENV} must be a hex string (e.g. from `python -c 'import secrets; print(secrets.token_hex(32))'`)") from None
    path = home / "pseudonym.key"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return bytes.fromhex(path.read_text().strip())


def pseudonym(key: bytes, person_id: str) -> str:
    """A stable 16-hex-digit pseudonym; without the key it cannot be traced back to the CPR number."""
    return hashlib.blake2b(person_id.encode(), key=key, digest_size=8).hexdigest()


def pseudonymise(frame: pl.DataFrame, columns: list[str], key: bytes) -> pl.DataFrame:
    """Replace each CPR column by its pseudonym, hashing every distinct id once."""
    for column in columns:
        distinct = frame[column].drop_nulls().unique()
        mapping = pl.DataFrame({column: distinct, "_pseudonym": [pseudonym(key, v) for v in distinct]})
        frame = frame.join(mapping, on=column, how="left").with_columns(pl.col("_pseudonym").alias(column)).drop("_pseudonym")
    return frame
