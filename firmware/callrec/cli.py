"""The `callrec` command: argument parsing and wiring only; the work lives in the modules it calls."""

from __future__ import annotations

import argparse
import faulthandler
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from callrec import __version__
from callrec import config as configmod
from callrec.config import DEFAULT_CONFIG_PATH, Config, ConfigError

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
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except ConfigError as error:
        print(f"callrec: configuration error\n{error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
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
    sim.add_argument("--control-socket", type=Path, metavar="PATH",
                     help="local control socket for the console (default DATA/control.sock)")
    sim.set_defaults(func=cmd_simulate)

    demo = sub.add_parser("demo", parents=[common, data], help="two simulated lines, two calls, a summary")
    demo.add_argument("--realtime", action="store_true")
    demo.add_argument("--events", action="store_true", help="also print the event stream")
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
    calls.set_defaults(func=lambda args: (calls.print_help(sys.stderr), 2)[1])

    console = sub.add_parser("console", parents=[common, data], help="the technicians' serial console")
    console.add_argument("--port", required=True, metavar="DEVICE", help="serial port, e.g. /dev/ttyAMA0")
    console.add_argument("--baud", type=_positive_int, default=115200)
    console.add_argument("--control-socket", type=Path, metavar="PATH", default=Path("/run/callrec/control.sock"),
                         help="the service's control socket (default /run/callrec/control.sock)")
    console.set_defaults(func=cmd_console)

    recover = sub.add_parser("recover", parents=[common, data], help="register interrupted recordings")
    recover.set_defaults(func=cmd_recover)

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
    path = args.file or args.config or DEFAULT_CONFIG_PATH
    try:
        config = configmod.load(path)
        from callrec.service import StartupError, load_sound

        load_sound(config)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1
    except StartupError as error:
        print(f"{path}: 1 problem(s) in the configuration:\n  {error}", file=sys.stderr)
        return 1
    print(f"{path}: OK ({len(config.lines)} line(s), region {config.region}, "
          f"data in {config.storage.data_dir})")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from callrec import sdnotify
    from callrec.line.gpio_rpi import RpiGpioLine
    from callrec.service import Service, StartupError, hardware_backend

    config = load_config(args)
    faulthandler.enable()  # a watchdog SIGABRT puts every thread's stack in the journal
    service = Service(config, hardware_backend(RpiGpioLine(config.lines)))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        service.start()
    except StartupError as error:
        print(f"callrec: cannot start: {error}", file=sys.stderr)
        return 1
    _attach_front_ends(service, config, args.control_socket)
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


def _attach_front_ends(service: Any, config: Config, control_socket: Path | None = None) -> None:
    """MQTT and the control socket (the console's way in) attach through the control API."""
    if control_socket is not None:
        from callrec.control_server import attach as attach_control

        attach_control(service, control_socket)
    # Always: with no mqtt.host it publishes nothing but still keeps the journal within its bounds.
    from callrec.mqtt.service import attach

    attach(service, config)


def cmd_simulate(args: argparse.Namespace) -> int:
    from callrec.simulate import ScenarioError, load_scenario

    if args.data is None:
        print("callrec simulate: --data DIR is required (where the recordings and index go)", file=sys.stderr)
        return 2
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as error:
        print(f"callrec simulate: {error}", file=sys.stderr)
        return 2
    config = configmod.load(args.config).with_data_dir(args.data)
    return run_simulation(config, scenario, realtime=args.realtime, explicit_config=args.config is not None,
                          print_events=True,
                          control_socket=args.control_socket or config.storage.data_dir / "control.sock")


def run_simulation(config: Config, scenario: Any, *, realtime: bool, explicit_config: bool,
                   print_events: bool, control_socket: Path | None = None) -> int:
    from callrec.service import Service, StartupError
    from callrec.simulate import ScenarioError, prepare

    holder: dict[str, Any] = {}
    try:
        sim = prepare(config, scenario, realtime=realtime, explicit_config=explicit_config,
                      post=lambda item: holder["service"].core.post(item),
                      caught_up=lambda: holder["service"].core.wait_caught_up(),
                      awaiting=lambda line: holder["service"].core.awaiting_answer(line))
    except ScenarioError as error:
        print(f"callrec simulate: {error}", file=sys.stderr)
        return 2
    listeners = [_print_event] if print_events else []
    service = holder["service"] = Service(sim.config, sim.backend, listeners)
    try:
        try:
            service.start()
        except StartupError as error:
            print(f"callrec simulate: cannot start: {error}", file=sys.stderr)
            return 1
        _attach_front_ends(service, sim.config, control_socket)
        assert service.core is not None and service.recorder is not None
        service.core.finished.wait()
        service.stop()
    finally:
        sim.close()
    return 0


def _print_event(stamped: Any) -> None:
    sys.stdout.write(stamped.to_json() + "\n")
    sys.stdout.flush()


def cmd_console(args: argparse.Namespace) -> int:
    """The console must start even with a broken configuration: it is how a technician finds out."""
    from callrec.console.session import run_console

    source = args.config or (DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None)
    try:
        config, problem = load_config(args), None
    except ConfigError as error:
        config, problem = configmod.load(None).with_data_dir(args.data), str(error)
        log.error("console: the configuration is not usable, showing the defaults:\n%s", error)
    return run_console(config, port=args.port, baud=args.baud, control_socket=args.control_socket,
                       config_source=str(source or "<built-in defaults>"), config_problem=problem)


def cmd_demo(args: argparse.Namespace) -> int:
    from callrec.demo import run_demo

    return run_demo(args)


def _open_index(args: argparse.Namespace) -> Any:
    from callrec.store.index import CallIndex

    config = load_config(args)
    path = config.storage.data_dir / "index.sqlite"
    if not path.exists():
        print(f"callrec: no call index at {path} (wrong --data?)", file=sys.stderr)
        return None
    return CallIndex(path)


def cmd_calls_list(args: argparse.Namespace) -> int:
    index = _open_index(args)
    if index is None:
        return 1
    with index:
        records = (index.find_by_number(args.number, args.limit) if args.number
                   else index.latest(args.limit, args.line))
    if args.json:
        for record in records:
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        return 0
    print(f"{'CALL ID':<32} {'LINE':>4} {'DIR':<8} {'STARTED (UTC)':<24} {'SECS':>7} {'STATUS':<10} RECORDING")
    for r in records:
        recording = (r.get("recording") or {}).get("path", "-")
        print(f"{r['call_id']:<32} {r['line']:>4} {r.get('direction') or '-':<8} "
              f"{r.get('started_at') or '-':<24} {r.get('duration_s') or 0:>7.1f} {r['status']:<10} "
              f"{recording}")
    return 0


def cmd_calls_show(args: argparse.Namespace) -> int:
    index = _open_index(args)
    if index is None:
        return 1
    with index:
        record = index.get(args.call_id)
    if record is None:
        print(f"callrec: no call {args.call_id!r} in the index", file=sys.stderr)
        return 1
    print(json.dumps(record, indent=2, ensure_ascii=False))
    return 0


def cmd_recover(args: argparse.Namespace) -> int:
    from callrec.bus import EventBus
    from callrec.recording.recover import recover_all
    from callrec.service import StartupError, open_store
    from callrec.store.lock import DataDirBusy, DataLock

    config = load_config(args)
    lock = DataLock(config.storage.data_dir)
    try:
        lock.acquire()   # never beside a running service: its calls in progress are parts too
        journal, index = open_store(config.storage.data_dir)
    except (StartupError, DataDirBusy) as error:
        lock.release()
        print(f"callrec recover: {error}", file=sys.stderr)
        return 1
    try:
        records = recover_all(config.storage.data_dir, config.storage.format, index, EventBus(journal))
    finally:
        index.close()
        journal.close()
        lock.release()
    for record in records:
        print(f"recovered {record['call_id']}: {record['duration_s']:.1f} s -> {record['recording']['path']}")
    if not records:
        print("nothing to recover")
    return 0


if __name__ == "__main__":
    sys.exit(main())
