"""What the network looks like from the appliance: its addresses, its default route, and whether the
broker and the archive answer. Asked by the console's `net` and `selftest` through the service.

The console's own unit has no network at all (`RestrictAddressFamilies=AF_UNIX`), so these are the
service's answers, read without netlink (which the service's unit does not allow either): addresses
from the SIOCGIFADDR ioctl and /proc/net/if_inet6, routes from /proc/net/route and ipv6_route.
"""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

from callrec.config import Config

SIOCGIFADDR = 0x8915
REACH_TIMEOUT_S = 3.0
PROC = Path("/proc/net")


def addresses() -> list[dict[str, str]]:
    """Every interface's IPv4 and IPv6 addresses, loopback included (it proves nothing else)."""
    found: list[dict[str, str]] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for _index, name in socket.if_nameindex():
            try:
                packed = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue   # no IPv4 address on it
            found.append({"interface": name, "address": socket.inet_ntoa(packed[20:24])})
    try:
        for row in (PROC / "if_inet6").read_text().splitlines():
            hexaddr, _idx, prefix, _scope, _flags, name = row.split()
            address = ipaddress.IPv6Address(bytes.fromhex(hexaddr))
            found.append({"interface": name, "address": f"{address}/{int(prefix, 16)}"})
    except (OSError, ValueError):
        pass
    return found


def default_route() -> dict[str, str] | None:
    """The IPv4 default route (gateway and interface), else the IPv6 one, else None."""
    try:
        for row in (PROC / "route").read_text().splitlines()[1:]:
            fields = row.split()
            if len(fields) > 3 and fields[1] == "00000000" and int(fields[3], 16) & 0x2:   # RTF_GATEWAY
                gateway = socket.inet_ntoa(struct.pack("<I", int(fields[2], 16)))
                return {"gateway": gateway, "interface": fields[0]}
        for row in (PROC / "ipv6_route").read_text().splitlines():
            fields = row.split()
            if len(fields) == 10 and fields[0] == "0" * 32 and fields[1] == "00" and fields[4] != "0" * 32:
                return {"gateway": str(ipaddress.IPv6Address(bytes.fromhex(fields[4]))), "interface": fields[9]}
    except (OSError, ValueError):
        pass
    return None


def reach_tcp(host: str, port: int, timeout: float = REACH_TIMEOUT_S) -> tuple[bool, str]:
    """(answers, what happened): a TCP connection that opens, within `timeout`."""
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, f"{host}:{port} answers ({(time.monotonic() - started) * 1000:.0f} ms)"
    except OSError as error:
        return False, f"{host}:{port} does not answer ({error.strerror or error})"


def reach_broker(config: Config, connected: bool | None) -> dict[str, Any]:
    """The broker: the publisher's own link when there is one, else a TCP connect."""
    settings = config.mqtt
    if not settings.enabled:
        return {"configured": False, "reachable": None, "detail": "no broker configured (mqtt.host)"}
    if connected:
        return {"configured": True, "reachable": True,
                "detail": f"connected to {settings.host}:{settings.port}"}
    ok, detail = reach_tcp(str(settings.host), settings.port)
    if ok and connected is False:
        detail += ", but the MQTT session is not up (credentials? TLS?)"
    return {"configured": True, "reachable": ok and connected is not False, "detail": detail}


def reach_archive(config: Config, timeout: float = 10.0) -> dict[str, Any]:
    """The archive answers a HEAD for a key that need not exist, on a connection of its own (the
    uploader's is its thread's alone), within `timeout`."""
    if not config.archive.url:
        return {"configured": False, "reachable": None, "detail": "no archive configured ([archive] url)"}
    from callrec.archive import ArchiveError, open_target

    outcome: dict[str, Any] = {"configured": True, "reachable": False,
                               "detail": f"{config.archive.url} did not answer in {timeout:.0f} s"}

    def probe() -> None:
        started = time.monotonic()
        try:
            target = open_target(config.archive)
            try:
                target.head("selftest/probe")
            finally:
                target.close()
        except (ArchiveError, OSError) as error:
            outcome.update(detail=f"{config.archive.url}: {error}")
            return
        outcome.update(reachable=True,
                       detail=f"{config.archive.url} answers ({(time.monotonic() - started) * 1000:.0f} ms)")

    worker = threading.Thread(target=probe, name="archive-probe", daemon=True)
    worker.start()
    worker.join(timeout)
    return dict(outcome)


def net_report(config: Config, mqtt_connected: bool | None) -> dict[str, Any]:
    return {"addresses": addresses(), "default_route": default_route(),
            "broker": reach_broker(config, mqtt_connected), "archive": reach_archive(config)}
