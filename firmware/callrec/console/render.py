"""Plain-text renderings for an 80-column dumb terminal: ASCII tables, level bars, TOML-ish config.

Only ASCII is used in the fixed text, so a terminal without UTF-8 still shows every table; values
(a device name in Japanese, say) pass through as they are.
"""

from __future__ import annotations

import json
import re
from typing import Any

from callrec.events import StampedEvent, utc_iso

SECRET_KEY = re.compile(r"pass(word|phrase)?(_hash)?$|secret|token|credential|private", re.IGNORECASE)
_BAR_CHARS = 30
_BAR_FLOOR_DBFS = -60.0
SILENT_DBFS = -100.0   # below any real line's noise: digital silence (the core floors at -120)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """Columns as wide as their widest cell; numbers right-aligned."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [bool(rows) and all(isinstance(r[i], int | float) for r in rows) for i in range(len(headers))]

    def fmt(values: list[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    return "\n".join([fmt(headers), *(fmt(r) for r in cells)])


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def duration(seconds: float) -> str:
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    text = f"{rest // 3600}h{rest % 3600 // 60:02d}m{rest % 60:02d}s"
    return f"{days}d{text}" if days else text


def size(count: float | None) -> str:
    if count is None:
        return "unknown"
    units = ("B", "kB", "MB", "GB", "TB")
    step = 0
    while count >= 1000 and step < len(units) - 1:
        count /= 1000
        step += 1
    return f"{int(count)} B" if step == 0 else f"{count:.1f} {units[step]}"


def level_bar(dbfs: float) -> str:
    """RMS on a -60..0 dBFS scale, so line noise, speech and clipping are told apart at a glance."""
    filled = round((min(0.0, max(_BAR_FLOOR_DBFS, dbfs)) - _BAR_FLOOR_DBFS) / -_BAR_FLOOR_DBFS * _BAR_CHARS)
    return "|" + "#" * filled + "." * (_BAR_CHARS - filled) + "|"


def levels(result: dict[str, Any]) -> str:
    rows = []
    window = None
    for line in result.get("lines", []):
        rms, peak = line.get("rms_dbfs"), line.get("peak_dbfs")
        window = line.get("window_s", window)
        if rms is None or peak is None:
            rows.append(f"{line['line']:>4}  no audio yet")
        elif peak <= SILENT_DBFS:
            rows.append(f"{line['line']:>4}  {'silent':>8}  {'silent':>9}  {level_bar(SILENT_DBFS)}")
        else:
            clip = "  CLIPPING" if peak >= -0.1 else ""
            rows.append(f"{line['line']:>4}  {rms:>8.1f}  {peak:>9.1f}  {level_bar(rms)}{clip}")
    title = "LINE  RMS dBFS  PEAK dBFS"
    if window:
        title += f"  (last {window:g} s, bar -60..0 dBFS)"
    return "\n".join([title, *rows])


def event_line(stamped: StampedEvent) -> str:
    event = stamped.event
    where = f"L{event.line}" if event.line is not None else "--"
    fields = " ".join(f"{k}={_short(v)}" for k, v in event.fields.items())
    text = f"{stamped.seq:>6}  {utc_iso(event.wall)}  {event.type:<22} {where:<3} {event.call_id or '-'}  {fields}"
    return text.rstrip()


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= 40 else text[:37] + "..."


def config_text(data: dict[str, Any]) -> str:
    """The configuration as TOML-like text: scalars, then [tables], then [[arrays of tables]].

    Keys that name a secret are shown as `(hidden)` whatever they hold; unset values (TOML has no
    null) are shown commented out, so the text says what is in effect and could be pasted back.
    """
    out: list[str] = []
    _toml_table(data, [], out)
    return "\n".join(out).strip()


def _toml_table(data: dict[str, Any], path: list[str], out: list[str]) -> None:
    scalars = {k: v for k, v in data.items() if not _is_table(v) and not _is_table_array(v)}
    for key, value in scalars.items():
        out.append(_toml_pair(key, value))
    for key, value in data.items():
        if _is_table(value):
            out.extend(["", f"[{'.'.join([*path, key])}]"])
            _toml_table(value, [*path, key], out)
        elif _is_table_array(value):
            for item in value:
                out.extend(["", f"[[{'.'.join([*path, key])}]]"])
                _toml_table(item, [*path, key], out)


def _is_table(value: Any) -> bool:
    return isinstance(value, dict)


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list | tuple) and bool(value) and all(isinstance(v, dict) for v in value)


def _toml_pair(key: str, value: Any) -> str:
    if SECRET_KEY.search(key) and not key.endswith(("_file", "_path")):
        return f"{key} = (hidden)"
    if value is None:
        return f"# {key} = (unset)"
    return f"{key} = {_toml_value(value)}"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)
