"""Robust input: whatever arrives on the serial line, the console neither crashes nor wedges.

Hypothesis makes the garbage a cable, a wrong baud rate or a confused terminal sends: binary noise,
over-long lines, NUL bytes of a break, unfinished escape sequences, invalid UTF-8. After each burst
the technician's Ctrl-U and a command must still get an answer from the same console process.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from callrec.console import LineEditor
from console_support import (
    PROMPT,
    close_console,
    open_console,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("fuzz")
    console = open_console(work, work / "data", work / "nobody.sock", ready=True)
    yield console
    close_console(console)


garbage = st.one_of(
    st.binary(min_size=1, max_size=600),
    st.binary(min_size=1, max_size=8).map(lambda b: b * 700),              # a stuck line: the same bytes
    st.just(b"\x00" * 64),                                                 # a break as the UART reads it
    st.just(b"\x1b[" + b"9" * 200),                                        # an escape that never ends
    st.just(b"\xff\xfe\x80" * 100),                                        # wrong-baud noise, invalid UTF-8
    st.text(min_size=1, max_size=300).map(lambda t: t.encode()),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(burst=garbage)
def test_garbage_never_crashes_or_wedges_the_console(console: dict[str, Any], burst: bytes) -> None:
    terminal = console["terminal"]
    terminal.type(burst)
    terminal.type(b"\x1b[D\x03\x15")   # end any escape sequence, abandon the line
    terminal.type("version\r")
    terminal.read_until("(Python ", timeout=20)   # the answer of `version`, whatever came before it
    terminal.read_until(PROMPT, timeout=20)
    assert console["proc"].poll() is None


def test_an_over_long_line_is_capped_not_buffered_without_end() -> None:
    editor = LineEditor()
    echo, lines = editor.feed(b"x" * 100_000 + b"\r")
    assert lines == ["x" * 200] and len(echo) < 300


def test_history_recalls_earlier_commands_with_the_arrows() -> None:
    editor = LineEditor()
    for line in ("status", "levels", "levels"):
        editor.remember(line)
    assert editor.history == ["status", "levels"]
    editor.feed(b"sel")
    editor.feed(b"\x1b[A")
    assert editor.pending == "levels"
    editor.feed(b"\x1bOA")   # SS3 arrows (application cursor mode) too
    assert editor.pending == "status"
    editor.feed(b"\x1b[B\x1b[B")
    assert editor.pending == "sel", "down past the newest gives back what was being typed"


def test_tab_completes_a_command_name_and_lists_the_choices() -> None:
    editor = LineEditor(complete=lambda text: ["status", "selftest", "help"], prompt="callrec> ")
    echo, _ = editor.feed(b"he\t")
    assert editor.pending == "help " and echo.endswith(b"lp ")
    editor.feed(b"\x15")
    echo, _ = editor.feed(b"s\t")
    assert b"selftest  status" in echo and echo.endswith(b"callrec> s")


def test_a_passphrase_is_not_echoed_and_not_remembered(tmp_path: Path) -> None:
    editor = LineEditor()
    editor.secret = True
    echo, lines = editor.feed(b"hunter22\x7f2\r")
    assert lines == ["hunter22"] and echo == b"\r\n"
    editor.feed(b"\x1b[A")
    assert editor.pending == ""
