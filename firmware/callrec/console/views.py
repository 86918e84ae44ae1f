"""Renderings of the service's diagnostics for the console: meter, gpio, selftest, net, link lines.

Pure text from the dicts the control socket answers with, so each is tested without a port.
"""

from __future__ import annotations

from typing import Any

from callrec.console import render

METER_WIDTH = 78


def meter_line(row: dict[str, Any]) -> str:
    """One line's level as one line of text, overwritten in place (~10 times a second)."""
    rms, peak = row.get("rms_dbfs"), row.get("peak_dbfs")
    if rms is None or peak is None:
        text = f"line {row['line']}: no audio yet"
    elif peak <= render.SILENT_DBFS:
        text = f"line {row['line']} {render.level_bar(render.SILENT_DBFS)} silent (digital zero)"
    else:
        clip = " CLIP" if peak >= -0.1 else ""
        text = f"line {row['line']} {render.level_bar(rms)} {rms:6.1f} dBFS pk {peak:6.1f}{clip}"
    return text[:METER_WIDTH].ljust(METER_WIDTH)


def gpio_rows(result: dict[str, Any]) -> list[list[Any]]:
    def level(value: bool | None, active: str, quiet: str) -> str:
        return "?" if value is None else (active if value else quiet)

    def pin(number: int | None) -> str:
        return f"GPIO{number}" if number is not None else "D-chan"   # an ISDN line has no sense pins

    return [[row["line"], pin(row["hook_pin"]), level(row.get("hook_raw"), "ACTIVE", "idle"),
             "off-hook" if row.get("offhook") else "on-hook", row.get("hook_edges", 0),
             pin(row["ring_pin"]), level(row.get("ring_raw"), "ACTIVE", "idle"),
             "ringing" if row.get("ringing") else "quiet", row.get("ring_edges", 0)]
            for row in result.get("lines", [])]


GPIO_HEADERS = ["LINE", "HOOK PIN", "RAW", "DEBOUNCED", "EDGES", "RING PIN", "RAW", "DEBOUNCED", "EDGES"]


def gpio_table(result: dict[str, Any]) -> str:
    return render.table(GPIO_HEADERS, gpio_rows(result))


def selftest_text(result: dict[str, Any]) -> str:
    lines = [f"{check['verdict']:<4}  {check['name']:<18}  {check['detail']}" for check in result.get("checks", [])]
    summary = result.get("summary", {})
    verdict = "PASSED" if result.get("ok") else "FAILED"
    lines.append(f"selftest {verdict}: {summary.get('PASS', 0)} PASS, {summary.get('WARN', 0)} WARN, "
                 f"{summary.get('FAIL', 0)} FAIL")
    return "\n".join(lines)


def net_text(result: dict[str, Any]) -> str:
    out = ["addresses:"]
    out += [f"  {a['interface']:<10} {a['address']}" for a in result.get("addresses", [])] or ["  none"]
    route = result.get("default_route")
    out.append(f"default route: via {route['gateway']} dev {route['interface']}" if route else
               "default route: none (the broker and the archive are reachable only on the local network)")
    for name in ("broker", "archive"):
        answer = result.get(name) or {}
        mark = "-" if not answer.get("configured") else ("reachable" if answer.get("reachable") else "UNREACHABLE")
        out.append(f"{name}: {mark}: {answer.get('detail')}")
    return "\n".join(out)


def link_lines(stats: dict[str, Any]) -> list[str]:
    """The status lines about the MQTT link, the clock and the uptimes."""
    out = []
    mqtt = stats.get("mqtt")
    if isinstance(mqtt, dict):
        out.append(f"mqtt: {'connected' if mqtt.get('connected') else 'NOT CONNECTED'}, "
                   f"backlog {mqtt.get('backlog')} event(s)")
    else:
        out.append("mqtt: not configured")
    clock = stats.get("clock")
    if isinstance(clock, dict) and clock.get("synchronised") is not None:
        offset = clock.get("offset_s")
        out.append(f"clock: {'synchronised' if clock['synchronised'] else 'NOT SYNCHRONISED'} "
                   f"(NTP source {clock.get('source') or '-'}"
                   + (f", offset {offset * 1000:.1f} ms" if offset is not None else "") + ")")
    else:
        out.append("clock: synchronisation state unknown")
    system = stats.get("system_uptime_s")
    out.append(f"uptime: service {render.duration(stats.get('uptime_s') or 0)}, system "
               + (render.duration(system) if system is not None else "unknown"))
    return out
