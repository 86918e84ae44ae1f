"""The evidence and privacy commands of `callrec`: verify, hold, release, prune, export, audit,
decrypt, keygen. Parsing and wiring only; the work is in evidence/ and privacy/.

Each command that changes or discloses something is audited, with the local user as `who`.
They work beside a running service: the index takes writers from several processes (sqlite WAL),
and the chain and the audit log serialise appends with a lock.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sqlite3
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from callrec.config import Config
from callrec.errors import CallrecError
from callrec.events import utc_iso
from callrec.evidence.audit import AuditLog, cli_actor
from callrec.evidence.export import export_bundle
from callrec.evidence.heads import WitnessLookup, ask_witnesses, journal_witness
from callrec.evidence.keys import DeviceKeyError, load_public, parse_public
from callrec.evidence.store import Evidence, UnknownCall
from callrec.evidence.verify import verify

log = logging.getLogger(__name__)

ConfigLoader = Callable[[argparse.Namespace], Config]
WitnessLookups = Callable[[Config, Any], dict[str, WitnessLookup]]   # (config, device public key) -> by name


def register(sub: Any, common: argparse.ArgumentParser, data: argparse.ArgumentParser,
             load_config: ConfigLoader, witness_lookups: WitnessLookups | None = None) -> None:
    """`witness_lookups`: who outside the device can be asked for the ledgers' heads (the archive,
    the broker), handed in by the command line so this room does not reach up into theirs."""
    def add(name: str, helptext: str, func: Callable[[argparse.Namespace, ConfigLoader], int],
            *, with_data: bool = True) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(name, parents=[common, data] if with_data else [common],
                                                         help=helptext)
        parser.set_defaults(func=lambda args: func(args, load_config))
        return parser

    p = add("verify", "re-hash every recording, check the evidence chain and the audit log",
            lambda args, loader: cmd_verify(args, loader, witness_lookups))
    p.add_argument("--since", type=_date, metavar="DATE", help="only calls started on or after YYYY-MM-DD")
    p.add_argument("--key", metavar="ed25519:…", help="the device public key the office pinned")
    p.add_argument("--json", action="store_true", help="the report as one JSON document")
    p.add_argument("--archive", metavar="URL", help="check the office archive instead (with the [archive] settings)")
    p.add_argument("--device", metavar="ID", help="with --archive: only this device")

    p = add("hold", "keep calls whatever the retention policy says (legal hold)", cmd_hold)
    p.add_argument("call_ids", nargs="*", metavar="CALL_ID")
    p.add_argument("--number", help="every call with this caller or dialled number")
    p.add_argument("--reason", required=True, help="why (kept in the record, the chain and the audit log)")

    p = add("release", "end the legal hold of calls", cmd_release)
    p.add_argument("call_ids", nargs="+", metavar="CALL_ID")
    p.add_argument("--reason", default="released", help="why")

    p = add("prune", "run the retention policy once", cmd_prune)
    p.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    p.add_argument("--now", type=_moment, metavar="ISO", help="take this as the current time (UTC ISO 8601)")

    p = add("export", "a disclosure bundle of one party's calls (APPI Art. 33)", cmd_export)
    p.add_argument("--number", help="every call with this caller or dialled number")
    p.add_argument("--call", nargs="+", metavar="CALL_ID", default=[], help="these calls")
    p.add_argument("--since", type=_date, metavar="DATE", help="calls started on or after YYYY-MM-DD")
    p.add_argument("--until", type=_date, metavar="DATE", help="calls started before YYYY-MM-DD")
    p.add_argument("--out", type=Path, required=True, metavar="BUNDLE.zip")
    p.add_argument("--archive", metavar="URL", help="build it from the office archive (office side)")
    p.add_argument("--device", metavar="ID", help="with --archive: the device whose calls")

    p = add("audit", "print the audit log", cmd_audit)
    p.add_argument("--since", type=_date, metavar="DATE", help="entries on or after YYYY-MM-DD")
    p.add_argument("--json", action="store_true", help="one JSON entry per line")

    p = add("decrypt", "turn an encrypted recording or export bundle back into audio", cmd_decrypt)
    p.add_argument("--identity", type=Path, required=True, metavar="KEYFILE", help="the office's age identity file")
    p.add_argument("input", type=Path, metavar="IN", help="<call>.flac.age, <call>.pcm.age-frames or a bundle .zip")
    p.add_argument("--out", type=Path, metavar="OUT", help="default: IN without .age (.wav for frames, a "
                                                            "directory for a bundle)")

    p = add("keygen", "make an office age identity and print its recipient", cmd_keygen, with_data=False)
    p.add_argument("--out", type=Path, required=True, metavar="KEYFILE")


def _date(text: str) -> str:
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _moment(text: str) -> float:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def _fail(command: str, message: str) -> int:
    print(f"callrec {command}: {message}", file=sys.stderr)
    return 1


def _evidence(command: str, data_dir: Path) -> Evidence | None:
    if not data_dir.is_dir():
        _fail(command, f"no data directory {data_dir} (wrong --data?)")
        return None
    try:
        return Evidence.open(data_dir)
    except (OSError, DeviceKeyError) as error:
        _fail(command, f"the evidence store in {data_dir} cannot be opened: {error}")
        return None


def _index(command: str, data_dir: Path, *, readonly: bool = False) -> Any:
    from callrec.store import CallIndex, StoreDamaged

    path = data_dir / "index.sqlite"
    if not path.exists():
        _fail(command, f"no call index at {path} (wrong --data?)")
        return None
    try:
        return CallIndex(path, readonly=readonly)
    except (StoreDamaged, OSError, sqlite3.Error) as error:
        _fail(command, f"cannot open the call index {path}: {error}; `callrec recover --data {data_dir}` "
                       "rebuilds a damaged one")
        return None


def _open_both(command: str, data_dir: Path, *, readonly: bool = False) -> tuple[Evidence, Any] | None:
    """The evidence store and the call index, or None once the reason was printed."""
    evidence = _evidence(command, data_dir)
    index = _index(command, data_dir, readonly=readonly) if evidence else None
    if evidence is None or index is None:
        return None
    return evidence, index


# ---- verify, audit --------------------------------------------------------------------------------


def cmd_verify(args: argparse.Namespace, load_config: ConfigLoader,
               witness_lookups: WitnessLookups | None = None) -> int:
    if args.archive is not None or args.device is not None:
        from callrec.archive import verify_from_archive

        return verify_from_archive(args, load_config(args))
    config = load_config(args)
    data_dir = config.storage.data_dir
    if not data_dir.is_dir():
        return _fail("verify", f"no data directory {data_dir} (wrong --data?)")
    try:
        pinned = parse_public(args.key) if args.key else None
    except DeviceKeyError as error:
        return _fail("verify", f"--key: {error}")
    lookups = witness_lookups(config, pinned or load_public(data_dir)) if witness_lookups else {}
    witnesses, notes = ask_witnesses(lookups)   # before the ledgers are read
    report = verify(data_dir, since=args.since, pinned=pinned, witnesses=witnesses)
    report.notes += notes
    if args.json:
        print(json.dumps(report.document(), ensure_ascii=False))
    else:
        for problem in report.problems:
            print(problem.line())
        for note in report.notes:
            print(f"note: {note}")
        print(f"device key {report.public_key or '(none)'}")
        verdict = (f"{len(report.problems)} problem(s)" if report.problems else "OK")
        print(f"{verdict}: {report.calls} call(s) checked, {report.deleted} deleted by policy, "
              f"{report.chain_entries} chain entries, {report.audit_entries} audit entries, "
              f"chain head {report.head or '-'}")
    return 1 if report.problems else 0


def cmd_audit(args: argparse.Namespace, load_config: ConfigLoader) -> int:
    data_dir = load_config(args).storage.data_dir
    if not data_dir.is_dir():
        return _fail("audit", f"no data directory {data_dir} (wrong --data?)")
    for entry in AuditLog(data_dir).entries(args.since):
        if args.json:
            print(json.dumps(entry, ensure_ascii=False))
        else:
            what = json.dumps(entry.get("what", {}), ensure_ascii=False)
            print(f"{entry.get('seq', '?'):>6} {entry.get('at', '?'):<24} {entry.get('who', '?'):<28} "
                  f"{entry.get('action', '?'):<24} {what}")
    return 0


# ---- hold, release, prune -------------------------------------------------------------------------


def cmd_hold(args: argparse.Namespace, load_config: ConfigLoader) -> int:
    if bool(args.call_ids) == bool(args.number):
        return _fail("hold", "name the calls: CALL_ID… or --number NUMBER (one of them)")
    opened = _open_both("hold", load_config(args).storage.data_dir)
    if opened is None:
        return 1
    evidence, index = opened
    who = cli_actor()
    with index:
        records = (_by_number(index, args.number) if args.number else [index.get(c) for c in args.call_ids])
        unknown = [c for c, r in zip(args.call_ids, records, strict=False) if r is None]
        if unknown:
            return _fail("hold", f"no call {', '.join(unknown)} in the index (nothing was held)")
        if not records:
            return _fail("hold", f"no calls with number {args.number!r}")
        for record in records:
            evidence.hold(index, record["call_id"], reason=args.reason, by=who)
            print(f"held {record['call_id']}: {args.reason}")
    return 0


def cmd_release(args: argparse.Namespace, load_config: ConfigLoader) -> int:
    opened = _open_both("release", load_config(args).storage.data_dir)
    if opened is None:
        return 1
    evidence, index = opened
    who = cli_actor()
    status = 0
    with index:
        for call_id in args.call_ids:
            try:
                released = evidence.release(index, call_id, reason=args.reason, by=who)
            except UnknownCall:
                status = _fail("release", f"no call {call_id!r} in the index")
                continue
            print(f"released {call_id}" if released else f"{call_id} was not held")
    return status


def cmd_prune(args: argparse.Namespace, load_config: ConfigLoader) -> int:
    from callrec.privacy import Keeper

    config = load_config(args)
    data_dir = config.storage.data_dir
    opened = _open_both("prune", data_dir)
    if opened is None:
        return 1
    evidence, index = opened
    who = cli_actor()
    remote, queue = None, None
    if config.archive.url and config.archive.apply_retention and not args.dry_run:
        from callrec.archive import ArchiveQueue, recording_key

        queue = ArchiveQueue(data_dir / "archive.sqlite")

        def remote(record: dict[str, Any]) -> None:   # the uploader deletes them (`archive sync`, the service)
            key = recording_key(config.mqtt.device_id, record)
            if key is not None and queue is not None:
                queue.delete_later([key, key.rsplit("/", 1)[0] + f"/{record['call_id']}.json"])

    journal = _witness_journal(data_dir)
    with index:
        keeper = Keeper(data_dir, index, evidence.chain, evidence.audit, config.retention, remote_delete=remote,
                        witness=(lambda: journal_witness(journal)) if journal is not None else None)
        victims = keeper.prune(args.now, dry_run=args.dry_run, by=who)
        suspended = keeper.suspended
    if queue is not None:
        queue.close()
    if journal is not None:
        journal.close()
    if suspended is not None:
        return _fail("prune", f"nothing was deleted: {suspended}")
    for record in victims:
        print(f"{'would delete' if args.dry_run else 'deleted'} {record['call_id']} "
              f"(started {record.get('started_at')}, {record.get('direction') or '-'})")
    if not args.dry_run:
        evidence.audit.record("prune", who, {"deleted": len(victims), "now": utc_iso(args.now) if args.now else None})
    print(f"{len(victims)} call(s) {'due' if args.dry_run else 'deleted'} under the retention policy "
          f"({config.retention.days} days; inbound {config.retention.days_for('inbound')}, "
          f"outbound {config.retention.days_for('outbound')})")
    return 0


def _witness_journal(data_dir: Path) -> Any:
    """The event journal, read-only, for the heads the device last witnessed (None without one)."""
    from callrec.store import Journal

    path = data_dir / "journal.sqlite"
    if not path.exists():
        return None
    try:
        return Journal(path, readonly=True)
    except (OSError, sqlite3.Error, CallrecError) as error:
        log.warning("the event journal cannot be read (%s): prune goes on without the device's witness", error)
        return None


def _by_number(index: Any, number: str) -> list[dict[str, Any]]:
    return list(index.find_by_number(number, limit=1_000_000))


# ---- export ---------------------------------------------------------------------------------------


def cmd_export(args: argparse.Namespace, load_config: ConfigLoader) -> int:
    if bool(args.call) == bool(args.number):
        return _fail("export", "name the calls: --number NUMBER or --call CALL_ID… (one of them)")
    config = load_config(args)
    if args.archive is not None or args.device is not None:
        from callrec.archive import export_from_archive

        return export_from_archive(args, config)
    data_dir = config.storage.data_dir
    opened = _open_both("export", data_dir, readonly=True)
    if opened is None:
        return 1
    evidence, index = opened
    with index:
        if args.number:
            records = _by_number(index, args.number)
        else:
            records = []
            for call_id in args.call:
                record = index.get(call_id)
                if record is None:
                    return _fail("export", f"no call {call_id!r} in the index (nothing was exported)")
                records.append(record)
    records = [r for r in records if (not args.since or str(r.get("started_at") or "") >= args.since)
               and (not args.until or str(r.get("started_at") or "") < args.until)]
    if not records:
        return _fail("export", "no calls match; nothing was exported")
    if args.out.exists():
        return _fail("export", f"{args.out} exists; not overwriting it")
    query = {"number": args.number, "calls": args.call or None, "since": args.since, "until": args.until}
    try:
        done = export_bundle(data_dir, records, evidence.chain, evidence.key, config.privacy.purpose, args.out,
                             query=query, device_name=config.device_name)
    except OSError as error:
        return _fail("export", f"cannot write {args.out}: {error}")
    evidence.audit.record("export", cli_actor(), {"calls": done.calls, "bundle": str(args.out.absolute()),
                                                  "sha256": done.sha256, "query": query})
    print(f"exported {len(done.calls)} call(s) to {done.path} ({done.bytes} bytes, sha256 {done.sha256})")
    return 0


# ---- decrypt, keygen ------------------------------------------------------------------------------


def cmd_decrypt(args: argparse.Namespace, load_config: ConfigLoader) -> int:
    from callrec.privacy import CryptoError, load_identities

    try:
        identities = load_identities(args.identity)
        source = args.input
        if not source.is_file():
            return _fail("decrypt", f"{source}: no such file")
        with open(source, "rb") as handle:
            head = handle.read(32)
        if head.startswith(b"PK"):
            out = _decrypt_bundle(source, args.out, identities)
        else:
            out = _decrypt_file(source, args.out, identities, head)
    except CryptoError as error:
        return _fail("decrypt", str(error))
    except OSError as error:
        return _fail("decrypt", f"{error}")
    _audit_decrypt(args, load_config, source, out)
    print(f"decrypted {source} -> {out}")
    return 0


def _decrypt_file(source: Path, out: Path | None, identities: list[Any], head: bytes) -> Path:
    from callrec.privacy import AGE_MAGIC, FRAMES_MAGIC, CryptoError

    if head.startswith(AGE_MAGIC):
        target = out or source.with_name(source.name.removesuffix(".age"))
        if target == source:
            target = source.with_name(source.name + ".decrypted")
        with open(source, "rb") as data_in:
            _write_via_tmp(target, lambda handle: _age_to(data_in, handle, identities, str(source)))
        return target
    if head.startswith(FRAMES_MAGIC):
        target = out or source.with_name(source.name.split(".", 1)[0] + ".wav")
        _write_via_tmp(target, lambda handle: _frames_to_wav(source, handle, identities))
        return target
    raise CryptoError(f"{source}: neither an age file nor an age-frames part nor an export bundle")


def _age_to(data_in: Any, handle: Any, identities: list[Any], where: str) -> None:
    from callrec.privacy import decrypt_age

    decrypt_age(data_in, handle, identities, where)


def _frames_to_wav(source: Path, handle: Any, identities: list[Any]) -> None:
    import numpy as np
    import soundfile

    from callrec.privacy import decrypt_frames, scan_frames

    info = scan_frames(source)
    with soundfile.SoundFile(handle, "w", samplerate=info.rate, channels=1, subtype="PCM_16", format="WAV") as sink:
        for samples in decrypt_frames(source, identities):
            sink.write(np.asarray(samples))


def _decrypt_bundle(source: Path, out: Path | None, identities: list[Any]) -> Path:
    from callrec.privacy import AGE_MAGIC, FRAMES_MAGIC

    target = out or source.with_name(source.stem + "-decrypted")
    if target.exists():
        raise OSError(f"{target} exists; not overwriting it")
    work = target.with_name(target.name + ".tmp")
    work.mkdir(parents=True)
    with zipfile.ZipFile(source) as bundle:
        for member in bundle.infolist():
            name = Path(member.filename)
            if name.is_absolute() or ".." in name.parts or member.is_dir():
                continue
            data = bundle.read(member)
            destination = work / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            if data.startswith(AGE_MAGIC) or data.startswith(FRAMES_MAGIC):
                encrypted = destination.with_name(destination.name + ".in")
                encrypted.write_bytes(data)
                try:
                    _decrypt_file(encrypted, None if data.startswith(FRAMES_MAGIC) else
                                  destination.with_name(destination.name.removesuffix(".age")),
                                  identities, data[:32])
                    if data.startswith(FRAMES_MAGIC):
                        encrypted.with_name(name.name.split(".", 1)[0] + ".wav").rename(
                            destination.with_name(name.name.split(".", 1)[0] + ".wav"))
                finally:
                    encrypted.unlink(missing_ok=True)
            else:
                destination.write_bytes(data)
    work.rename(target)
    return target


def _write_via_tmp(target: Path, write: Callable[[Any], None]) -> None:
    tmp = target.with_name(target.name + ".tmp")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _audit_decrypt(args: argparse.Namespace, load_config: ConfigLoader, source: Path, out: Path) -> None:
    """A decrypt done on the device (its data directory exists here) is audited."""
    try:
        data_dir = load_config(args).storage.data_dir
    except Exception:   # the office PC: no configuration, nothing to audit into
        return
    if (data_dir / "evidence").is_dir():
        Evidence.open(data_dir).audit.try_record("decrypt", cli_actor(), {"input": str(source.absolute()),
                                                                         "output": str(out.absolute())})


def cmd_keygen(args: argparse.Namespace, load_config: ConfigLoader) -> int:
    from callrec.privacy import new_identity

    target: Path = args.out
    if target.exists():
        return _fail("keygen", f"{target} exists; not overwriting an identity (it may be the only key to "
                               "your recordings)")
    identity, recipient = new_identity()
    created = utc_iso(dt.datetime.now(dt.UTC).timestamp())
    text = f"# created: {created}\n# public key: {recipient}\n{identity}\n"
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as error:
        return _fail("keygen", f"cannot create {target}: {error.strerror or error}")
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text)
    print(f"Public key: {recipient}", file=sys.stderr)
    print(recipient)
    return 0


