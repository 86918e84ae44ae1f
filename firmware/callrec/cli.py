"""The `callrec` command: argument parsing and wiring only; the work lives in the modules it calls."""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import json
import logging
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from callrec import __version__
from callrec.config import DEFAULT_CONFIG_PATH, Config, ConfigError
from callrec.config import model as configmod

log = logging.getLogger("callrec")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name, default in (("config", None), ("verbose", False)):  # given before or after the command
        if not hasattr(args, name):
            setattr(args, name, default)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for chatty in ("paramiko", "botocore", "boto3", "urllib3", "s3transfer"):   # their INFO is per connection
        logging.getLogger(chatty).setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except ConfigError as error:
        print(f"callrec: configuration error\n{error}", file=sys.stderr)
        return 2
    except BrokenPipeError:   # `callrec analyze … | head`: the reader has what it wanted
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        data = getattr(args, "data", None)
        print("callrec: interrupted; a recording in progress is kept as a part file: "
              f"`callrec recover{f' --data {data}' if data else ''}` registers it", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=argparse.SUPPRESS,
                        help=f"configuration file (default {DEFAULT_CONFIG_PATH})")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)
    data = argparse.ArgumentParser(add_help=False)
    data.add_argument("--data", type=Path, metavar="DIR", help="data directory (overrides storage.data_dir)")

    parser = argparse.ArgumentParser(prog="callrec", description="Office phone call recorder firmware.",
                                     parents=[common])
    parser.add_argument("--version", action="version", version=f"callrec {__version__}")
    sub = parser.add_subparsers(metavar="COMMAND")

    run = sub.add_parser("run", parents=[common, data], help="run the recorder service")
    run.add_argument("--control-socket", type=Path, metavar="PATH", default=Path("/run/callrec/control.sock"),
                     help="local control socket for the console (default /run/callrec/control.sock)")
    run.set_defaults(func=cmd_run)

    sim = sub.add_parser("simulate", parents=[common, data], help="run a scenario on simulated lines")
    sim.add_argument("scenario", type=Path, metavar="SCENARIO.toml")
    sim.add_argument("--realtime", action="store_true", help="run at wall-clock pace (private PulseAudio)")
    sim.add_argument("--control", "--control-socket", dest="control_socket", type=Path, metavar="PATH",
                     help="serve the control socket here, for `callrec console --control PATH` "
                          "(default DATA/control.sock)")
    sim.add_argument("--work", type=Path, metavar="DIR",
                     help="scratch files of the simulated cards (default: a temporary directory, removed "
                          "at the end); never the data directory")
    sim.set_defaults(func=cmd_simulate)

    demo = sub.add_parser("demo", parents=[common, data], help="two simulated lines, two calls, a summary")
    demo.add_argument("--realtime", action="store_true")
    demo.add_argument("--events", action="store_true", help="also print the event stream")
    demo.add_argument("--viewer", action="store_true",
                      help="then serve the office's web viewer over the demo's calls (needs callrec[office])")
    demo.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT", help="where --viewer listens")
    demo.set_defaults(func=cmd_demo)

    check = sub.add_parser("check-config", parents=[common], help="validate a configuration file")
    check.add_argument("file", type=Path, nargs="?", metavar="FILE")
    check.set_defaults(func=cmd_check_config)

    calls = sub.add_parser("calls", parents=[common], help="the call index")
    calls_sub = calls.add_subparsers(metavar="ACTION")
    listing = calls_sub.add_parser("list", parents=[common, data], help="latest calls, newest first")
    listing.add_argument("--json", action="store_true", help="one JSON document per line")
    listing.add_argument("--limit", type=_positive_int, default=20)
    listing.add_argument("--line", type=int)
    listing.add_argument("--number", help="calls with this caller or dialled number")
    listing.set_defaults(func=cmd_calls_list)
    show = calls_sub.add_parser("show", parents=[common, data], help="one call's full record")
    show.add_argument("call_id")
    show.set_defaults(func=cmd_calls_show)

    def calls_help(args: argparse.Namespace) -> int:
        calls.print_help(sys.stderr)
        return 2

    calls.set_defaults(func=calls_help)

    console = sub.add_parser("console", parents=[common, data], help="the technicians' serial console")
    console.add_argument("--port", required=True, metavar="DEVICE", help="serial port, e.g. /dev/ttyAMA0")
    console.add_argument("--baud", type=_positive_int, default=115200)
    console.add_argument("--control", "--control-socket", dest="control_socket", type=Path, metavar="PATH",
                         default=Path("/run/callrec/control.sock"),
                         help="the service's (or `simulate --control`'s) control socket "
                              "(default /run/callrec/control.sock)")
    console.set_defaults(func=cmd_console)

    passwd = sub.add_parser("passwd", parents=[common],
                            help="set the technician passphrase of the serial console (console.passphrase_hash)")
    passwd.set_defaults(func=cmd_passwd)

    recover = sub.add_parser("recover", parents=[common, data],
                             help="register interrupted recordings and re-index what the index lacks")
    recover.add_argument("--list-quarantine", action="store_true",
                         help="only list the parts set aside as unrecoverable (DATA/quarantine/)")
    recover.set_defaults(func=cmd_recover)

    from callrec.evidence import register_commands

    register_commands(sub, common, data, load_config, witness_lookups)
    from callrec.archive import register_commands as register_archive

    register_archive(sub, common, data, load_config)
    from callrec.viewer import register_commands as register_viewer

    register_viewer(sub, common, load_config)

    try:
        from callrec.dsp import analyze
    except ImportError:
        pass
    else:
        analyze.register(sub)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def load_config(args: argparse.Namespace) -> Config:
    """--config FILE, else the default file if it exists, else the built-in defaults."""
    path = args.config
    if path is None and DEFAULT_CONFIG_PATH.exists():
        path = DEFAULT_CONFIG_PATH
    config = configmod.load(path)
    return config.with_data_dir(getattr(args, "data", None))


# ---- commands ------------------------------------------------------------------------------------


def cmd_check_config(args: argparse.Namespace) -> int:
    from callrec.app import config_problems

    path = args.file or args.config or DEFAULT_CONFIG_PATH
    try:
        config = configmod.load(path)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1
    problems = config_problems(config)   # the sound cards of this machine, where they can be asked
    if problems:
        print(f"{path}: {len(problems)} problem(s) in the configuration:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"{path}: OK ({len(config.lines)} line(s), region {config.region}, "
          f"data in {config.storage.data_dir})")
    if config.privacy.encrypted:
        print(f"recordings are encrypted to {len(config.privacy.recipient)} age recipient(s); the device cannot "
              "decrypt them (the office identity can: `callrec decrypt`)")
    else:
        print("recordings are stored UNENCRYPTED: set [privacy] recipient = \"age1…\" (`callrec keygen` makes one)")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from callrec.app import Service, StartupError, attach_front_ends, hardware_backend, sdnotify
    from callrec.line import RpiGpioLine, hardware_lines

    config = load_config(args)
    faulthandler.enable()  # a watchdog SIGABRT puts every thread's stack in the journal
    service = Service(config, hardware_backend(hardware_lines(config.lines, RpiGpioLine(config.lines))))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        service.start()
    except StartupError as error:
        print(f"callrec: cannot start: {error}", file=sys.stderr)
        return 1
    attach_front_ends(service, config, args.control_socket)
    sdnotify.status("waiting for the first audio period")
    while not stop.is_set() and service.core is not None and service.core.last_audio_monotonic == 0:
        stop.wait(0.05)
    sdnotify.ready(f"recording {len(config.lines)} line(s)")
    log.info("callrec running: %d line(s), data in %s", len(config.lines), config.storage.data_dir)
    watchdog = sdnotify.Watchdog()
    while not stop.wait(1.0):
        watchdog.beat(service.healthy())
    sdnotify.stopping("finishing open recordings")
    service.stop()
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from callrec.sim import ScenarioError, load_scenario

    if args.data is None:
        print("callrec simulate: --data DIR is required (where the recordings and index go)", file=sys.stderr)
        return 2
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as error:
        print(f"callrec simulate: {error}", file=sys.stderr)
        return 2
    config = configmod.load(args.config).with_data_dir(args.data)
    from callrec.sim import run_simulation

    return run_simulation(config, scenario, realtime=args.realtime, explicit_config=args.config is not None,
                          print_events=True,
                          control_socket=args.control_socket or config.storage.data_dir / "control.sock",
                          workdir=args.work)


def witness_lookups(config: Config, public: Any) -> dict[str, Callable[[float], Any]]:
    """Who outside the device holds a witness of the ledgers' heads, for `verify`: the configured
    archive (its newest signed witness object) and MQTT broker (the retained `B/evidence/head`)."""
    lookups: dict[str, Callable[[float], Any]] = {}
    if config.archive.url:
        def from_archive(timeout_s: float) -> Any:
            from callrec.archive import witness_from_archive

            return witness_from_archive(config, public)

        lookups[f"the archive {config.archive.url}"] = from_archive
    if config.mqtt.enabled:
        def from_broker(timeout_s: float) -> Any:
            from callrec.mqtt import read_retained_head

            return read_retained_head(config.mqtt, timeout_s)

        lookups[f"the MQTT broker {config.mqtt.host}:{config.mqtt.port}"] = from_broker
    return lookups


def cmd_console(args: argparse.Namespace) -> int:
    """The console must start even with a broken configuration: it is how a technician finds out."""
    from callrec.console import run_console

    source = args.config or (DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None)
    source = source.absolute() if source is not None else None   # `config set` writes this very file
    try:
        config, problem = load_config(args), None
    except ConfigError as error:
        from callrec.config import salvage_console

        config, problem = configmod.load(None), str(error)
        with contextlib.suppress(ConfigError):   # --data itself is the problem: the defaults' directory
            config = config.with_data_dir(args.data)
        config = config.model_copy(update={"console": salvage_console(source)})
        log.error("console: the configuration is not usable, showing the defaults:\n%s", error)
    def reload() -> Config | None:
        try:
            return load_config(args)
        except ConfigError as error:
            log.error("console: the configuration is not usable now, keeping the one in effect:\n%s", error)
            return None

    return run_console(config, port=args.port, baud=args.baud, control_socket=args.control_socket,
                       config_source=str(source or "<built-in defaults>"), config_problem=problem,
                       reload=reload)


def cmd_passwd(args: argparse.Namespace) -> int:
    """Writes only the hash, into the file the console reads, keeping everything else in it."""
    from callrec.console import run_passwd

    return run_passwd(args.config or DEFAULT_CONFIG_PATH)


def cmd_demo(args: argparse.Namespace) -> int:
    from callrec.sim import run_demo

    return run_demo(args)


def _open_index(args: argparse.Namespace) -> Any:
    """The call index for reading: works on a read-only disk; a damaged one is a clear message."""
    from callrec.store import CallIndex, StoreDamaged

    config = load_config(args)
    path = config.storage.data_dir / "index.sqlite"
    if not path.exists():
        print(f"callrec: no call index at {path} (wrong --data?)", file=sys.stderr)
        return None
    try:
        return CallIndex(path, readonly=True)
    except StoreDamaged as damage:
        if "no such table" in damage.reason:
            print(f"callrec: the call index {path} holds no calls table (never written, or lost); "
                  f"`callrec recover --data {config.storage.data_dir}` rebuilds it from the recordings.",
                  file=sys.stderr)
            return None
        print(f"callrec: the call index {path} is damaged ({damage.reason}).\n"
              "The service moves it aside and rebuilds it from the recordings when it starts; to do that now, "
              f"run `callrec recover --data {config.storage.data_dir}`.", file=sys.stderr)
    except (OSError, sqlite3.Error) as error:
        print(f"callrec: cannot read the call index {path}: {error}", file=sys.stderr)
    return None


def cmd_calls_list(args: argparse.Namespace) -> int:
    index = _open_index(args)
    if index is None:
        return 1
    try:
        with index:
            records = (index.find_by_number(args.number, args.limit) if args.number
                       else index.latest(args.limit, args.line))
    except sqlite3.DatabaseError as error:
        return _index_damaged(args, error)
    data_dir = load_config(args).storage.data_dir
    records = [_with_presence(record, data_dir) for record in records]
    if args.json:
        for record in records:
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        return 0
    print(f"{'CALL ID':<32} {'LINE':>4} {'DIR':<8} {'STARTED (UTC)':<24} {'SECS':>7} {'STATUS':<10} RECORDING")
    for r in records:
        recording = (r.get("recording") or {}).get("path", "-")
        status = "MISSING" if r.get("missing_since") else r["status"]
        print(f"{r['call_id']:<32} {r['line']:>4} {r.get('direction') or '-':<8} "
              f"{r.get('started_at') or '-':<24} {r.get('duration_s') or 0:>7.1f} {status:<10} "
              f"{recording}")
    return 0


def cmd_calls_show(args: argparse.Namespace) -> int:
    index = _open_index(args)
    if index is None:
        return 1
    try:
        with index:
            record = index.get(args.call_id)
    except sqlite3.DatabaseError as error:
        return _index_damaged(args, error)
    if record is None:
        print(f"callrec: no call {args.call_id!r} in the index", file=sys.stderr)
        return 1
    record = _with_presence(record, load_config(args).storage.data_dir)
    if record.get("missing_since"):
        print(f"callrec: the recording of {args.call_id} is missing from the disk "
              f"({record['recording']['path']})", file=sys.stderr)
    print(json.dumps(record, indent=2, ensure_ascii=False))
    return 0


def _index_damaged(args: argparse.Namespace, error: Exception) -> int:
    data_dir = load_config(args).storage.data_dir
    print(f"callrec: the call index {data_dir / 'index.sqlite'} is damaged ({error}).\n"
          "The service moves it aside and rebuilds it from the recordings when it starts; to do that now, "
          f"run `callrec recover --data {data_dir}`.", file=sys.stderr)
    return 1


def _with_presence(record: dict[str, Any], data_dir: Path) -> dict[str, Any]:
    """A record whose recording file is gone says so (`missing_since`), even before the service
    notices at its next start: an index entry alone is no recording."""
    path = (record.get("recording") or {}).get("path")
    if path and not record.get("missing_since") and not (data_dir / path).exists():
        from callrec.events import utc_iso

        return {**record, "missing_since": utc_iso(time.time())}
    return record


def cmd_recover(args: argparse.Namespace) -> int:
    from callrec.app import StartupError, open_store, take_data_lock
    from callrec.events import EventBus
    from callrec.evidence import DeviceKeyError, Evidence
    from callrec.recording import list_quarantine, quarantine_dir, recover_all

    config = load_config(args)
    data_dir = config.storage.data_dir
    if args.list_quarantine:
        held = list_quarantine(data_dir)
        for name, size in held:
            print(f"{quarantine_dir(data_dir) / name}  {size} bytes")
        if not held:
            print(f"quarantine is empty ({quarantine_dir(data_dir)})")
        return 0
    try:
        lock = take_data_lock(data_dir)   # never beside a running service: its calls in progress are parts too
    except StartupError as error:
        print(f"callrec recover: {error}", file=sys.stderr)
        return 1
    try:
        try:
            store = open_store(data_dir)
        except StartupError as error:
            print(f"callrec recover: {error}", file=sys.stderr)
            return 1
        try:
            for _alarm, message in store.problems:
                print(message)
            try:
                chain = Evidence.open(data_dir).chain
            except (OSError, DeviceKeyError) as error:
                print(f"callrec recover: the evidence store cannot be opened ({error}); recovered calls are "
                      "not sealed into the chain", file=sys.stderr)
                chain = None
            bus = EventBus(store.journal)
            result = recover_all(data_dir, config.storage.format, store.index, bus,
                                 rate=config.audio.sample_rate, preroll_s=config.audio.preroll_seconds,
                                 chain=chain, journal_required=True)
            bus.retry()
            unjournaled = bus.held   # events this short-lived process could not journal are lost with it
        finally:
            store.close()
    finally:
        lock.release()
    for record in result.recovered:
        print(f"recovered {record['call_id']}: {record['duration_s']:.1f} s -> {record['recording']['path']}")
    for call_id in result.reindexed:
        print(f"indexed again {call_id} (from its sidecar)")
    for call_id in result.rebuilt:
        print(f"indexed again {call_id} (record rebuilt from the recording file)")
    for call_id in result.missing:
        print(f"MISSING {call_id}: the index names a recording that is not on the disk")
    for name in result.quarantined:
        print(f"QUARANTINED {name}: not recoverable, moved to {quarantine_dir(data_dir)}")
    for postponed in result.postponed:
        print(f"NOT RECOVERED {postponed.part}: {postponed.why}; the part is kept. {postponed.todo}")
    if result.index_postponed is not None:
        print(f"NOT RECONCILED the index with the recordings: {result.index_postponed.why}. "
              f"{result.index_postponed.todo}")
    if unjournaled:
        print(f"NOT JOURNALED {unjournaled} event(s) of this recovery: the event journal "
              f"{data_dir / 'journal.sqlite'} could not be written; they were printed in the log above. "
              "Free space on its disk; the calls' records are in the index and their sidecars.")
    if not (result.recovered or result.reindexed or result.rebuilt or result.missing or result.quarantined
            or result.postponed or result.index_postponed or store.problems):
        print("nothing to recover")
    unfinished = result.missing or result.quarantined or result.postponed or result.index_postponed or unjournaled
    return 1 if unfinished else 0


if __name__ == "__main__":
    sys.exit(main())
