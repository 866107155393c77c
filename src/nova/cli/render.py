"""The only module that draws for people (Rich) or prints JSON for scripts.

Contract: with ``--json`` stdout carries exactly one JSON document (or, for ``logs --follow``,
one JSON object per line) and nothing else; everything meant for a person's eyes that is not
the result itself (notes, progress, the invoke summary line) goes to stderr.
"""

from __future__ import annotations

import io
import json
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

_PIPE_WIDTH = 10_000  # no folding when stdout is not a terminal (grep, less, files)
PROGRESS_AFTER_S = 1.0  # calls quicker than this never flash a spinner
Result = TypeVar("Result")


class Renderer:
    def __init__(self) -> None:
        # file=None: Rich resolves sys.stdout / sys.stderr at print time (CliRunner swaps them).
        self.console = Console(highlight=False)
        self.err = Console(stderr=True, highlight=False)

    # --- for scripts -------------------------------------------------------------------------
    def json(self, data: Any, *, indent: int | None = 2) -> None:
        """One JSON document on stdout."""
        sys.stdout.write(json.dumps(data, indent=indent, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    # --- for people --------------------------------------------------------------------------
    def pretty_json(self, data: Any) -> None:
        self.console.print_json(data=data, ensure_ascii=False)

    def line(self, text: str | Text) -> None:
        """A result line on stdout (never interpreted as Rich markup)."""
        self.console.print(text, markup=False, soft_wrap=True)

    def note(self, text: str | Text, *, style: str = "dim") -> None:
        """A diagnostic line on stderr."""
        self.err.print(text, style=style, markup=False, soft_wrap=True)

    def waiting(
        self, label: str, call: Callable[[], Result], *, after_s: float = PROGRESS_AFTER_S
    ) -> Result:
        """``call()``; when stderr is a terminal and it takes longer than ``after_s``, a
        spinner with ``label`` and the time elapsed stays on stderr until it returns (then
        the line is erased). Scripts and pipes see nothing."""
        if not self.err.is_terminal:
            return call()
        outcome: list[Any] = []

        def run() -> None:
            try:
                outcome.append((True, call()))
            except BaseException as exc:  # handed to the caller's thread below
                outcome.append((False, exc))
            finally:
                done.set()

        done = threading.Event()
        # A daemon thread: Ctrl-C ends the command at once instead of waiting for the answer.
        threading.Thread(target=run, name="nova-call", daemon=True).start()
        if not done.wait(after_s):
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            columns = (SpinnerColumn(), TextColumn(label), TimeElapsedColumn())
            with Progress(*columns, console=self.err, transient=True) as progress:
                progress.add_task(label, total=None)
                done.wait()
        succeeded, value = outcome[0]
        if not succeeded:
            raise value
        result: Result = value
        return result

    def table(self, columns: Sequence[str], rows: Iterable[Sequence[str | Text]]) -> None:
        table = Table(box=None, pad_edge=False, header_style="bold")
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*row)
        self._block(table)

    def fields(self, pairs: Iterable[tuple[str, str | Text]]) -> None:
        """A two-column ``key  value`` listing for one record."""
        table = Table(box=None, show_header=False, pad_edge=False)
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for key, value in pairs:
            table.add_row(key, value)
        self._block(table)

    def _block(self, renderable: RenderableType) -> None:
        """Fit a terminal; into a pipe, print unwrapped lines without trailing padding."""
        if self.console.is_terminal:
            self.console.print(renderable)
            return
        plain = Console(file=io.StringIO(), width=_PIPE_WIDTH, color_system=None, highlight=False)
        with plain.capture() as capture:
            plain.print(renderable)
        lines = (line.rstrip() for line in capture.get().splitlines())
        sys.stdout.write("".join(f"{line}\n" for line in lines))


def fmt_bytes(size: object) -> str:
    if not isinstance(size, int | float) or isinstance(size, bool):
        return "-"
    if size < 1024:
        return f"{size:.0f} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1024 * 1024):.1f} MiB"


def fmt_ms(value: object) -> str:
    return f"{value:.1f} ms" if isinstance(value, int | float) else "-"


def fmt_time(value: object) -> str:
    """An API timestamp as ``YYYY-MM-DD HH:MM:SS`` (shown in the zone the daemon gave)."""
    if not isinstance(value, str) or not value:
        return "-"
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return parsed.strftime("%Y-%m-%d %H:%M:%S")


def fmt_unit(value: object, unit: str) -> str:
    """``128 MB``; ``-`` when the value is missing."""
    return "-" if value is None else f"{fmt_value(value)} {unit}"


def fmt_value(value: object) -> str:
    """A scalar for a table cell; ``None`` as ``-``."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(fmt_value(item) for item in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
