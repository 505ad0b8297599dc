"""The data snapshot a run reads: one hash over the bytes of every registered extract."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from sources.readers import EXTENSIONS
from sources.registry import Source


def snapshot(folder: Path, sources: Iterable[Source]) -> str:
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
