"""Running a scenario as `callrec simulate` does: the service on simulated hardware, to the end.

Used by `callrec simulate` and `callrec demo`; the wiring is the same as `callrec run`'s (app/), only
the backend differs (sim/simulation.py).
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

from callrec.app import Service, StartupError, attach_front_ends, take_data_lock
from callrec.config import Config
from callrec.events import Listener, StampedEvent
from callrec.sim.scenario import Scenario, ScenarioError
from callrec.sim.simulation import prepare


def run_simulation(config: Config, scenario: Scenario, *, realtime: bool, explicit_config: bool,
                   print_events: bool, control_socket: Path | None = None, workdir: Path | None = None) -> int:
    """Run a scenario through the service on simulated lines until its audio ends (or Ctrl-C).

    The data directory is claimed first, so a second simulation refused for a busy directory has
    touched nothing. Ctrl-C (or SIGTERM) stops like the service does: calls in progress are ended
    and saved, the control socket removed; a second Ctrl-C abandons that and leaves the parts for
    `callrec recover`.
    """
    try:
        lock = take_data_lock(config.storage.data_dir)
    except StartupError as error:
        print(f"callrec simulate: {error}", file=sys.stderr)
        return 1
    try:
        sim = prepare(config, scenario, realtime=realtime, explicit_config=explicit_config, workdir=workdir)
    except ScenarioError as error:
        lock.release()
        print(f"callrec simulate: {error}", file=sys.stderr)
        return 2
    except BaseException:
        lock.release()
        raise
    listeners: list[Listener] = [_print_event] if print_events else []
    service = Service(sim.config, sim.backend, listeners, lock=lock)
    sim.bind(service.wait_settled, service.player_idle)
    interrupted = threading.Event()
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}

    def interrupt(signum: int, _frame: Any) -> None:
        interrupted.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)   # a second Ctrl-C: give up saving

    for signum in previous:
        signal.signal(signum, interrupt)
    try:
        try:
            service.start()
        except StartupError as error:
            print(f"callrec simulate: cannot start: {error}", file=sys.stderr)
            return 1
        attach_front_ends(service, sim.config, control_socket)
        assert service.core is not None
        while not service.core.finished.wait(0.2) and not interrupted.is_set():
            pass
        assert service.device is not None
        in_progress = [state for state in service.device.line_states() if state["call_id"]]
        if interrupted.is_set():
            print(f"callrec simulate: interrupted; ending and saving {len(in_progress)} call(s) in progress "
                  "(Ctrl-C again leaves them for `callrec recover`)", file=sys.stderr)
        service.stop()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sim.close()
    return 130 if interrupted.is_set() else 0


def _print_event(stamped: StampedEvent) -> None:
    sys.stdout.write(stamped.to_json() + "\n")
    sys.stdout.flush()


