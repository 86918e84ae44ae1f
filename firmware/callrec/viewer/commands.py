"""`callrec viewer` and `callrec viewer-user add`: the office's web viewer (docs/viewer.md).

The web stack (Starlette, uvicorn) is the optional extra `callrec[office]`: imported only when the
viewer runs, so the appliance's image carries none of it.
"""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from callrec.config import Config

log = logging.getLogger(__name__)
ConfigLoader = Callable[[argparse.Namespace], Config]


def register(sub: Any, common: argparse.ArgumentParser, load_config: ConfigLoader) -> None:
    p = sub.add_parser("viewer", parents=[common], help="the office's web viewer (pip install 'callrec[office]')")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--archive", metavar="URL", help="the office archive (with the [archive] settings)")
    where.add_argument("--data", type=Path, metavar="DIR", help="a device's data directory (one-box office)")
    p.add_argument("--identity", type=Path, metavar="KEYFILE", help="the office age identity (encrypted recordings)")
    p.add_argument("--users", type=Path, required=True, metavar="FILE", help="accounts (callrec viewer-user add)")
    p.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT")
    p.add_argument("--trusted-proxy", action="extend", type=proxy_addresses, default=[], metavar="ADDR",
                   help="a reverse proxy's IP address whose X-Forwarded-For names the client (repeat or "
                        "comma-separate; default: none, the socket's peer is the client)")
    p.add_argument("--tls-cert", type=Path, metavar="FILE")
    p.add_argument("--tls-key", type=Path, metavar="FILE")
    p.add_argument("--device", metavar="ID", help="with --archive: only this device")
    p.add_argument("--annotations", type=Path, metavar="FILE",
                   help="notes and tags (default DATA/annotations.sqlite, or ./callrec-annotations.sqlite)")
    p.set_defaults(func=lambda args: cmd_viewer(args, load_config))

    u = sub.add_parser("viewer-user", parents=[common], help="the viewer's accounts")
    actions = u.add_subparsers(metavar="ACTION")
    add = actions.add_parser("add", parents=[common], help="add a user or set a user's role and password")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=("listener", "supervisor", "officer"))
    add.add_argument("--users", type=Path, required=True, metavar="FILE")
    add.set_defaults(func=cmd_user_add)

    def user_help(args: argparse.Namespace) -> int:
        u.print_help(sys.stderr)
        return 2

    u.set_defaults(func=user_help)


def proxy_addresses(text: str) -> list[str]:
    """`--trusted-proxy`: IP addresses, comma-separated. Never `*` or a name: whoever is trusted here
    names the client address the login lockout counts by (docs/viewer.md, Security)."""
    found = []
    for item in (part.strip() for part in text.split(",")):
        try:
            found.append(str(ipaddress.ip_address(item)))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{item!r} is not an IP address: give the reverse proxy's own address, e.g. 127.0.0.1 "
                "(not '*', a host name or a network: whoever is trusted decides the client address "
                "the login lockout counts by)") from None
    return found


def _fail(message: str) -> int:
    print(f"callrec viewer: {message}", file=sys.stderr)
    return 1


def cmd_user_add(args: argparse.Namespace) -> int:
    from callrec.viewer.users import Users, UsersError

    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            return _fail("the two passwords differ; nothing was changed")
    else:
        password = sys.stdin.readline().rstrip("\n")
    try:
        Users(args.users).add(args.name, args.role, password)
    except UsersError as error:
        return _fail(str(error))
    print(f"{args.name} is a {args.role} in {args.users}")
    return 0


def make_viewer(args: argparse.Namespace, config: Config) -> Any:
    """The Viewer for these arguments (raises CallrecError/OSError with a clear message)."""
    from callrec.privacy import load_identities
    from callrec.viewer.annotations import Annotations
    from callrec.viewer.app import Viewer
    from callrec.viewer.catalog import Catalog
    from callrec.viewer.sessions import Sessions
    from callrec.viewer.source import ArchiveSource, DataDirSource
    from callrec.viewer.users import Users

    identities = load_identities(args.identity) if args.identity else []
    source: Any
    if args.data is not None:
        if not (args.data / "index.sqlite").exists():
            raise FileNotFoundError(f"{args.data} holds no call index (wrong --data?)")
        source = DataDirSource(args.data)
        notes_path = args.annotations or args.data / "annotations.sqlite"
    else:
        from callrec.archive import archive_settings, open_target

        notes_path = args.annotations or Path("callrec-annotations.sqlite")
        source = ArchiveSource(open_target(archive_settings(config, args.archive)),
                               notes_path.absolute().parent / "callrec-office-evidence", args.device)
    users = Users(args.users)
    if not users.names():
        raise FileNotFoundError(f"{args.users} has no users: `callrec viewer-user add NAME --role officer "
                                f"--users {args.users}`")
    annotations = Annotations(notes_path)
    return Viewer(source, Catalog(source, annotations), annotations, users, Sessions(), identities,
                  config.privacy.purpose, secure_cookie=args.tls_cert is not None)


def server_options(listen: str, tls_cert: Path | None = None, tls_key: Path | None = None,
                   trusted_proxies: list[str] | None = None) -> dict[str, Any]:
    """uvicorn's settings for the viewer (also what the tests run it with).

    The login lockout counts by client address. uvicorn's proxy headers are off unless proxies are
    named: otherwise any client (uvicorn trusts 127.0.0.1 by default) could name its own address in
    X-Forwarded-For and so escape its lockout or lock someone else out. With `--trusted-proxy`, the
    address is taken from X-Forwarded-For only on connections from those addresses.
    """
    host, _, port = listen.rpartition(":")
    proxies = list(trusted_proxies or [])
    return {"host": host or "127.0.0.1", "port": int(port), "log_level": "warning",
            "proxy_headers": bool(proxies), "forwarded_allow_ips": proxies or None,
            "ssl_certfile": str(tls_cert) if tls_cert else None, "ssl_keyfile": str(tls_key) if tls_key else None}


def serve(viewer: Any, listen: str, tls_cert: Path | None = None, tls_key: Path | None = None,
          trusted_proxies: list[str] | None = None) -> None:
    import uvicorn

    from callrec.viewer.app import build_app

    uvicorn.run(build_app(viewer), **server_options(listen, tls_cert, tls_key, trusted_proxies))


def cmd_viewer(args: argparse.Namespace, load_config: ConfigLoader) -> int:
    from callrec.errors import CallrecError

    try:
        import jinja2  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        return _fail("the web viewer needs the office extra: pip install 'callrec[office]'")
    if (args.tls_cert is None) != (args.tls_key is None):
        return _fail("--tls-cert and --tls-key go together")
    host, _, port = args.listen.rpartition(":")
    if not port.isdigit():
        return _fail(f"--listen {args.listen!r}: HOST:PORT, e.g. 127.0.0.1:8080")
    try:
        viewer = make_viewer(args, load_config(args))
    except (CallrecError, OSError) as error:
        return _fail(str(error))
    scheme = "https" if args.tls_cert else "http"
    log.info("viewer on %s://%s over %s (%d calls)", scheme, args.listen, viewer.source.name, viewer.catalog.count())
    if args.trusted_proxy:
        log.info("client addresses from X-Forwarded-For on connections from %s", ", ".join(args.trusted_proxy))
    serve(viewer, args.listen, args.tls_cert, args.tls_key, args.trusted_proxy)
    return 0
