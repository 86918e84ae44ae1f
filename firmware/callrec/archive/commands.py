"""`callrec archive status|sync|list`, and the `--archive URL` side of `verify` and `export`.

On the device, `status` and `sync --once` work on its data directory's queue (beside a running
service too: uploads are idempotent and the queue is sqlite). On the office PC, `list`, `verify
--archive` and `export --archive` read the archive alone, with the same `[archive]` settings.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable
from typing import Any

from callrec.archive.office import DeviceArchive, archive_witness, devices, verify_archive
from callrec.archive.port import ArchiveError, Stored
from callrec.archive.queue import ArchiveQueue
from callrec.archive.targets import open_target
from callrec.archive.uploader import Uploader
from callrec.config import ArchiveConfig, Config
from callrec.events import utc_iso
from callrec.evidence import Report, Witness

ConfigLoader = Callable[[argparse.Namespace], Config]


def register(sub: Any, common: argparse.ArgumentParser, data: argparse.ArgumentParser,
             load_config: ConfigLoader) -> None:
    archive = sub.add_parser("archive", parents=[common], help="offload to the office archive")
    actions = archive.add_subparsers(metavar="ACTION")
    p = actions.add_parser("status", parents=[common, data], help="what waits for the archive")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=lambda args: cmd_status(args, load_config))
    p = actions.add_parser("sync", parents=[common, data], help="upload what is pending")
    p.add_argument("--once", action="store_true", required=True, help="upload what is pending, then exit: 0 when "
                                                                      "all of it is confirmed, 1 otherwise")
    p.set_defaults(func=lambda args: cmd_sync(args, load_config))
    p = actions.add_parser("list", parents=[common], help="calls in the archive (office side)")
    p.add_argument("--archive", metavar="URL", help="default: [archive] url")
    p.add_argument("--device", metavar="ID", help="only this device (default: every device in the archive)")
    p.add_argument("--number", help="calls with this caller or dialled number")
    p.add_argument("--since", metavar="DATE")
    p.add_argument("--until", metavar="DATE")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=lambda args: cmd_list(args, load_config))

    def archive_help(args: argparse.Namespace) -> int:
        archive.print_help(sys.stderr)
        return 2

    archive.set_defaults(func=archive_help)


def _fail(command: str, message: str) -> int:
    print(f"callrec {command}: {message}", file=sys.stderr)
    return 1


def archive_settings(config: Config, url: str | None) -> ArchiveConfig:
    if url:
        return config.archive.with_url(url)
    if not config.archive.url:
        raise ArchiveError("no archive: pass --archive URL or set [archive] url")
    return config.archive


def _queue(command: str, config: Config) -> ArchiveQueue | None:
    """The data directory's queue, or None once the reason was printed."""
    if not config.archive.url:
        _fail(command, "no archive is configured ([archive] url)")
        return None
    if not config.storage.data_dir.is_dir():
        _fail(command, f"no data directory {config.storage.data_dir} (wrong --data?)")
        return None
    return ArchiveQueue(config.storage.data_dir / "archive.sqlite")


def cmd_status(args: argparse.Namespace, load_config: ConfigLoader) -> int:
    config = load_config(args)
    queue = _queue("archive status", config)
    if queue is None:
        return 1
    from callrec.store import CallIndex

    pending = queue.pending()
    index_path = config.storage.data_dir / "index.sqlite"
    size = 0
    if index_path.exists():
        with CallIndex(index_path, readonly=True) as index:
            for item in pending:
                record = index.get(item.call_id) or {}
                size += int((record.get("recording") or {}).get("bytes") or 0)
    archived = len(queue.archived_ids())
    queue.close()
    oldest = pending[0].call_id if pending else None
    errors = sorted({item.last_error for item in pending if item.last_error})
    if args.json:
        print(json.dumps({"url": config.archive.url, "backlog": {"count": len(pending), "bytes": size,
                                                                  "oldest": oldest},
                          "archived": archived, "errors": errors}))
        return 0
    print(f"archive {config.archive.url}: {archived} call(s) archived; backlog {len(pending)} call(s), "
          f"{size} bytes, oldest {oldest or '-'}")
    for error in errors[:10]:
        print(f"  last error: {error}")
    return 0


def cmd_sync(args: argparse.Namespace, load_config: ConfigLoader) -> int:
    from callrec.store import CallIndex

    config = load_config(args)
    queue = _queue("archive sync", config)
    if queue is None:
        return 1
    index_path = config.storage.data_dir / "index.sqlite"
    if not index_path.exists():
        return _fail("archive sync", f"no call index at {index_path}")
    with CallIndex(index_path) as index:
        def on_archived(call_id: str, at: float, stored: Stored) -> None:
            with contextlib.suppress(KeyError):   # deleted meanwhile
                index.update(call_id, {"archived_at": utc_iso(at)})
            print(f"archived {call_id} -> {stored.key} ({stored.size} bytes)")

        uploader = Uploader(config.storage.data_dir, config.mqtt.device_id, config.archive,
                            open_target(config.archive), queue, index.get, on_archived)
        uploader.catch_up(iter(index))
        try:
            uploader.run_once(now=float("inf"))   # everything pending, whatever its back-off
            left = queue.pending()
        finally:
            uploader.target.close()
            queue.close()
    if left:
        print(f"callrec archive sync: {len(left)} call(s) not archived; last error: "
              f"{uploader.last_error or left[0].last_error}", file=sys.stderr)
        return 1
    print("everything is archived")
    return 0


def _devices(args: argparse.Namespace, settings: ArchiveConfig) -> list[DeviceArchive]:
    target = open_target(settings)
    names = [args.device] if getattr(args, "device", None) else devices(target)
    return [DeviceArchive(target, name) for name in names]


def cmd_list(args: argparse.Namespace, load_config: ConfigLoader) -> int:
    try:
        settings = archive_settings(load_config(args), args.archive)
        rows = [(d.device_id, r) for d in _devices(args, settings) for r in d.records()]
    except ArchiveError as error:
        return _fail("archive list", str(error))
    rows = [(device, r) for device, r in rows if _matches(r, args.number, args.since, args.until)]
    for device, record in rows:
        if args.json:
            print(json.dumps({"device_id": device, **record}, ensure_ascii=False))
        else:
            print(f"{device:<16} {record['call_id']:<32} {record.get('direction') or '-':<8} "
                  f"{record.get('started_at') or '-':<24} {record.get('duration_s') or 0:>7.1f} "
                  f"{record.get('caller_number') or record.get('dialed_number') or '-'}")
    return 0


def _matches(record: dict[str, Any], number: str | None, since: str | None, until: str | None) -> bool:
    started = str(record.get("started_at") or "")
    if since and started < since or until and started >= until:
        return False
    return not number or number in (record.get("caller_number"), record.get("dialed_number"))


def verify_from_archive(args: argparse.Namespace, config: Config) -> int:
    """`callrec verify --archive URL`: every device in it (or `--device`), from the archive alone."""
    try:
        settings = archive_settings(config, args.archive)
        archives = _devices(args, settings)
        if not archives:
            return _fail("verify", f"{settings.url} holds no device's chain")
        status = 0
        for device in archives:
            report = verify_archive(device, pinned=args.key, lock_days=settings.object_lock_days)
            _print_report(device.device_id, report, args.json)
            status = status or (1 if report.problems else 0)
    except ArchiveError as error:
        return _fail("verify", str(error))
    return status


def witness_from_archive(config: Config, public: Any) -> Witness | None:
    """For `verify` on the device: the configured archive's newest witness of this device's heads.
    ArchiveError when it cannot be reached, WitnessUnavailable when its witness cannot be used."""
    target = open_target(config.archive)
    try:
        return archive_witness(DeviceArchive(target, config.mqtt.device_id), public)
    finally:
        target.close()


def _print_report(device_id: str, report: Report, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.document(device_id=device_id), ensure_ascii=False))
        return
    for problem in report.problems:
        print(f"{device_id}: {problem.line()}")
    for note in report.notes:
        print(f"{device_id}: note: {note}")
    verdict = f"{len(report.problems)} problem(s)" if report.problems else "OK"
    print(f"{device_id}: {verdict}: {report.calls} call(s) checked in the archive, {report.deleted} deleted by "
          f"policy, {report.chain_entries} chain entries, {report.audit_entries} audit entries, "
          f"chain head {report.head or '-'}, device key {report.public_key or '-'}")


def export_from_archive(args: argparse.Namespace, config: Config) -> int:
    from callrec.evidence import build_bundle

    try:
        settings = archive_settings(config, args.archive)
        archives = _devices(args, settings)
        if len(archives) != 1:
            return _fail("export", "name the device (--device ID): the archive holds "
                                   f"{', '.join(d.device_id for d in archives) or 'none'}")
        (device,) = archives
        records = [r for r in device.records()
                   if (r.get("call_id") in args.call if args.call else _matches(r, args.number, None, None))
                   and _matches(r, None, args.since, args.until)]
        if not records:
            return _fail("export", "no calls match in the archive; nothing was exported")
        if args.out.exists():
            return _fail("export", f"{args.out} exists; not overwriting it")
        query = {"archive": settings.url, "device": device.device_id, "number": args.number,
                 "calls": args.call or None, "since": args.since, "until": args.until}
        done = build_bundle(records, device.read, device.entries(), device.public_key(), config.privacy.purpose,
                            args.out, query=query, device_name=device.device_id)
    except (ArchiveError, OSError) as error:
        return _fail("export", str(error))
    print(f"exported {len(done.calls)} call(s) from {settings.url} to {done.path} ({done.bytes} bytes, "
          f"sha256 {done.sha256})")
    return 0


