"""The simulator: a scenario drives the real pipeline through real alsa-lib and simulated hardware.

`prepare` turns a scenario into the service's backend: the simulated line (the line port's twin:
hook and ring edges from the scenario) and the simulated cards (the audio port's twin, sim/cards.py:
the lines' audio through alsa-lib's `file` plugin, what the device plays mixed back into the line,
the scenario's faults). Lines that share a card in the configuration (a stereo card carries two)
share one simulated card, channel for channel, so the channel split and the shared playback run
as on the appliance.

Without `--realtime` the `null` slave reads unpaced (an hour in seconds): the cards read no
further than the device has acted on, and keep in step with each other. With `--realtime` a
private PulseAudio with null sinks (sim/pulse.py) supplies a real clock behind the same PCMs.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callrec.app import Backend, channel_problems
from callrec.audio import AlsaBackend, PcmSpec
from callrec.config import Config, ConfigError, report
from callrec.line import SimulatedLine
from callrec.sim.cards import CardLine, Lockstep, SimCard, SimulatedCards, WallClock
from callrec.sim.lineaudio import asound_conf, write_card
from callrec.sim.pulse import PulseServer
from callrec.sim.scenario import Scenario, ScenarioError, ScenarioLine

log = logging.getLogger(__name__)

# The simulated cards are stereo, like the USB card of the bill of materials (hw/bom.csv).
SIM_CARD_CHANNELS = 2


@dataclass
class Simulation:
    config: Config                   # the configuration with the lines moved onto the simulated cards
    backend: Backend
    cards: SimulatedCards
    source: SimulatedLine
    workdir: Path
    pulse: PulseServer | None
    owns_workdir: bool = True

    def bind(self, settle: Callable[[], None], player_idle: Callable[[str], bool]) -> None:
        """The service's side of pacing, once it exists: its settle, and whether a player is idle."""
        for card in self.cards.cards:
            card.settle = settle

            def idle(name: str = card.playback.spec.name) -> bool:
                return player_idle(name)

            card.player_idle = idle

    def card_of(self, line: int) -> SimCard:
        return next(card for card in self.cards.cards if line in card.lines)

    def close(self) -> None:
        self.cards.close()
        if self.pulse is not None:
            self.pulse.stop()
        if self.owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def prepare(config: Config, scenario: Scenario, *, realtime: bool, explicit_config: bool,
            workdir: Path | None = None) -> Simulation:
    """Write the line audio and the ALSA configuration, and build the simulation backend.

    Must run before the first PCM is opened in this process: alsa-lib reads its configuration once.
    Once the service exists, `Simulation.bind` gives the cards its pacing: `wait_settled` (the
    pipeline has taken what was heard so far) and whether a player is idle.

    The scratch files (converted line audio, the simulated cards, PulseAudio's socket) go to
    `workdir`, by default a new temporary directory removed by `close()`: never into the data
    directory, whose space belongs to the recordings.
    """
    _check_sim_channels(config, scenario)
    owns = workdir is None
    if workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="callrec-sim-"))
    else:
        workdir.mkdir(parents=True, exist_ok=True)
    try:
        return _prepare_in(config, scenario, realtime=realtime, explicit_config=explicit_config,
                           workdir=workdir, owns=owns)
    except BaseException:
        if owns:
            shutil.rmtree(workdir, ignore_errors=True)
        raise


def _check_sim_channels(config: Config, scenario: Scenario) -> None:
    """The simulated cards are stereo: a line on a channel they lack is the configuration error a
    real stereo card would give at start (app.channel_problems)."""
    used = {s.line for s in scenario.lines}
    problems: list[str] = []
    for kind in ("capture", "playback"):
        for device in dict.fromkeys(getattr(line, f"{kind}_pcm") for line in config.lines if line.id in used):
            problems += channel_problems(config, kind, device, SIM_CARD_CHANNELS)
    if problems:
        raise ConfigError(report("<configuration>", "configuration", [
            *problems, f"(the simulated sound cards have {SIM_CARD_CHANNELS} channels, like the card of hw/bom.csv)"]))


def _prepare_in(config: Config, scenario: Scenario, *, realtime: bool, explicit_config: bool,
                workdir: Path, owns: bool) -> Simulation:
    rate = config.audio.sample_rate
    period = rate * config.audio.period_ms // 1000
    groups = _group_lines(config, list(scenario.lines), explicit_config)
    configured = {line.id: line for line in config.lines}
    group_channels = [{s.line: _channel(config, s.line) for s in group} for group in groups]
    files = [write_card(workdir, k, group, channels, rate, period)
             for k, (group, channels) in enumerate(zip(groups, group_channels, strict=True))]
    pulse = PulseServer(workdir, rate, [(f"card{k}", card.width) for k, card in enumerate(files)]) if realtime else None
    conf = workdir / "asound.conf"
    conf.write_text("".join(
        asound_conf(card, pulse.slave(f"card{k}_in.monitor") if pulse else '"null"',
                    pulse.slave(f"card{k}_out") if pulse else '"null"') for k, card in enumerate(files)))
    os.environ["ALSA_CONFIG_PATH"] = f"/usr/share/alsa/alsa.conf:{conf}"
    source = SimulatedLine([s.line for s in scenario.lines])
    lockstep = Lockstep([f"card{k}" for k in range(len(groups))], slack_frames=100 * period)
    clock = WallClock(realtime, [(f.at, f.seconds) for f in scenario.faults if f.kind == "clock_step"],
                      [(f.at, f.seconds) for f in scenario.faults if f.kind == "clock_unsynchronised"])
    alsa = AlsaBackend()
    cards: list[SimCard] = []
    lines = []
    for k, (group, channels, card_files) in enumerate(zip(groups, group_channels, files, strict=True)):
        capture = PcmSpec(card_files.capture_pcm, "capture", card_files.width, rate, period)
        playback = PcmSpec(card_files.playback_pcm, "playback", card_files.width, rate, period)
        gone = [(int(f.at * rate), int((f.at + f.seconds) * rate)) for f in scenario.faults
                if f.kind == "capture_gone" and (f.line is None or f.line in channels)]
        cards.append(SimCard(
            f"card{k}", alsa.source(capture), alsa.sink(playback),
            {s.line: CardLine(s.line, channels[s.line], list(s.events)) for s in group},
            card_files.frames, source, lockstep, clock, gone, paced=realtime))
        for s in group:
            base = configured.get(s.line)
            fields: dict[str, Any] = base.model_dump() if base is not None else {
                "id": s.line, "hook_gpio": 2 + 3 * s.line, "ring_gpio": 3 + 3 * s.line, "led_gpio": None,
            }
            fields.update(capture_pcm=capture.name, capture_channel=channels[s.line],
                          playback_pcm=playback.name, playback_channel=channels[s.line])
            lines.append(fields)
    sim_config = config.model_validate({**config.model_dump(), "lines": lines})
    backend_cards = SimulatedCards(cards)
    by_capture = {card.capture.spec.name: card for card in cards}
    by_playback = {card.playback.spec.name: card for card in cards}
    backend = Backend(
        line_source=source,
        audio=backend_cards,
        capture_clock=lambda spec: (lambda frames: frames / spec.rate),   # line time
        playback_clock=lambda spec: by_playback[spec.name].play_clock,
        handover=lambda spec: by_capture[spec.name].handover,
        wall_of=clock.wall_of,
        # Paced, the periods go to the core as on the device (every 5th, or before an edge: `handover`),
        # so a paced run costs what `callrec run` does; unpaced, in 1 s batches, for speed.
        capture_batch=Backend.capture_batch if realtime else 50,
        queue_size=0 if realtime else 16,
        finite=True,
        listeners=[card.on_event for card in cards],
        clock_status=clock.status,
    )
    return Simulation(sim_config, backend, backend_cards, source, workdir, pulse, owns_workdir=owns)


def _group_lines(config: Config, scenario: list[ScenarioLine], explicit_config: bool) -> list[list[ScenarioLine]]:
    """Scenario lines by the capture PCM they are configured on: lines that share a card in the
    configuration (a stereo card carries two) share one simulated PCM, channel for channel."""
    configured = {line.id: line for line in config.lines}
    groups: dict[str, list[ScenarioLine]] = {}
    for s in scenario:
        if s.line not in configured and explicit_config:
            raise ScenarioError(f"scenario line {s.line} is not among the configured lines "
                                f"{sorted(configured)}; add it to the configuration")
        key = configured[s.line].capture_pcm if s.line in configured else f"line {s.line}"
        groups.setdefault(key, []).append(s)
    return list(groups.values())


def _channel(config: Config, line: int) -> int:
    configured = {entry.id: entry for entry in config.lines}
    return configured[line].capture_channel if line in configured else 0

