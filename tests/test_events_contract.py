"""docs/events.md is the contract: every type and every field the code emits is documented."""

from __future__ import annotations

import re
from pathlib import Path

from callrec.events import EVENT_TYPES

DOC = Path(__file__).resolve().parents[1] / "docs" / "events.md"
ENVELOPE = {"v", "seq", "ts", "type", "line", "call_id", "clock_trusted"}


def documented() -> dict[str, set[str]]:
    sections: dict[str, set[str]] = {}
    current = None
    for line in DOC.read_text().splitlines():
        heading = re.match(r"### `([a-z._]+)`", line)
        if heading:
            current = heading.group(1)
            sections[current] = set()
        elif current and line.startswith("| `"):
            sections[current].add(line.split("`")[1])
    return sections


def test_every_event_type_has_a_section_and_no_section_is_stale():
    assert set(documented()) == set(EVENT_TYPES)


def test_every_field_a_simulated_call_emits_is_documented(simulate):
    events = [(0.0, "ring", "on"), (1.0, "ring", "off"), (3.0, "ring", "on"), (3.6, "hook", "off"),
              (8.0, "hook", "on"), (8.3, "hook", "off"), (16.0, "hook", "on"), (20, "hook", "off"),
              (20.5, "hook", "on"), (22.0, "ring", "on"), (23.0, "ring", "off")]
    result = simulate([{"line": 1, "audio": "line1.wav", "events": events, "seconds": 40}])
    assert result.returncode == 0, result.stderr
    docs = documented()
    seen_types = set()
    for event in result.events:
        seen_types.add(event["type"])
        assert set(event) >= ENVELOPE
        undocumented = set(event) - ENVELOPE - docs[event["type"]]
        assert not undocumented, (event["type"], undocumented)
    assert {"line.ring", "line.hook", "line.flash", "call.started", "call.answered", "call.ended",
            "announcement.played", "recording.saved"} <= seen_types
