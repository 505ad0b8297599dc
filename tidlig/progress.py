"""Progress bars for long command-line work, on stderr so the command's output stays clean."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def progress(description: str, total: int | None = None) -> Iterator[Callable[..., None]]:
    """A bar counting to total (a spinner with the time taken when total is None); yields step(description=None).

    Shown only on a terminal: in logs and tests nothing is written.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    counted = [BarColumn(), MofNCompleteColumn()] if total else []
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), *counted, TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)

        def step(description: str | None = None, advance: int = 1) -> None:
            bar.update(task, advance=advance, **({"description": description} if description else {}))

        yield step
