"""The live D-channel source: the tap board's UART, read on a thread, deframed, handed to a sink.

A thin backend that decides nothing (the line port's rule): it opens the serial device, feeds
every byte to an `HdlcDeframer` and calls `sink(frame)` for each good frame, from its own thread.
A USB-serial adapter that is unplugged, or a device that is not there yet at boot, is not fatal:
the loop logs once per outage, waits `reconnect_s` and opens the device again, until `stop()`.
A sink that raises is logged and the loop goes on: one bad frame must not end the recording.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import serial

from callrec.isdn.hdlc import HdlcDeframer
from callrec.isdn.pcap import CapturedFrame

log = logging.getLogger(__name__)

FrameSink = Callable[[CapturedFrame], None]
SerialFactory = Callable[..., Any]


class SerialDChannel:
    """Frames from the tap on `device` (e.g. /dev/serial0 at 115200 8N1) to a sink callback."""

    def __init__(self, device: str, *, baudrate: int = 115200, reconnect_s: float = 1.0,
                 deframer: HdlcDeframer | None = None, serial_factory: SerialFactory = serial.Serial) -> None:
        self.device = device
        self.baudrate = baudrate
        self.reconnect_s = reconnect_s
        self.deframer = deframer or HdlcDeframer()
        self._factory = serial_factory
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._port: Any = None
        self.connected = threading.Event()
        self.reconnects = 0

    def start(self, sink: FrameSink) -> None:
        """Start reading on a daemon thread; `sink` is called from that thread."""
        if self._thread is not None:
            raise RuntimeError("SerialDChannel already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(sink,), name=f"dchannel {self.device}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread and close the device."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self, sink: FrameSink) -> None:
        outage_logged = False
        while not self._stop.is_set():
            try:
                self._port = self._factory(self.device, self.baudrate, timeout=0.1)
            except (OSError, serial.SerialException) as exc:
                if not outage_logged:
                    log.warning("D-channel tap %s cannot be opened (%s); retrying every %.1f s",
                                self.device, exc, self.reconnect_s)
                    outage_logged = True
                self._stop.wait(self.reconnect_s)
                continue
            if outage_logged:
                log.warning("D-channel tap %s is back", self.device)
                self.reconnects += 1
            outage_logged = False
            self.connected.set()
            try:
                self._read(sink)
            except (OSError, serial.SerialException) as exc:
                log.warning("D-channel tap %s lost (%s); reopening", self.device, exc)
                outage_logged = True
            finally:
                self.connected.clear()
                self._close()
            if not self._stop.is_set():
                self._stop.wait(self.reconnect_s)

    def _read(self, sink: FrameSink) -> None:
        port = self._port
        while not self._stop.is_set():
            data = port.read(max(1, port.in_waiting))
            if not data:
                continue
            for frame in self.deframer.feed(data):
                try:
                    sink(frame)
                except Exception:
                    log.exception("D-channel sink failed on a frame; going on")

    def _close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except (OSError, serial.SerialException):
                log.debug("closing %s failed", self.device, exc_info=True)
