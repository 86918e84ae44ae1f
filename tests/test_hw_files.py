"""The hardware design files: the pin map the firmware reads, the BOM and the schematic agree."""

from __future__ import annotations

import csv
import re
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

HW = Path(__file__).resolve().parents[1] / "hw"
UART_PINS = {14, 15}  # GPIO14 TXD / GPIO15 RXD belong to the serial console
BOM_COLUMNS = ["ref", "qty", "value", "description", "manufacturer", "mpn", "rating", "side", "notes"]


def pinmap() -> dict:
    return tomllib.loads((HW / "pinmap.toml").read_text())


def netlist() -> tuple[dict[str, str], dict[str, list[str]]]:
    comps: dict[str, str] = {}
    nets: dict[str, list[str]] = {}
    for raw in (HW / "tap.net").read_text().splitlines():
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        if words[0] == "COMP":
            assert words[1] not in comps, f"{words[1]} declared twice"
            comps[words[1]] = words[2]
        elif words[0] == "NET":
            assert words[1] not in nets, f"net {words[1]} declared twice"
            nets[words[1]] = words[2:]
        else:
            raise AssertionError(f"unknown statement: {raw}")
    return comps, nets


def bom_rows() -> list[dict[str, str]]:
    with (HW / "bom.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_pinmap_has_four_lines_with_hook_ring_and_led() -> None:
    lines = pinmap()["line"]
    assert sorted(lines) == ["1", "2", "3", "4"]
    for line in lines.values():
        assert {"hook_gpio", "ring_gpio", "led_gpio", "capture_channel"} <= set(line)
        assert line["hook_active_low"] is True and line["ring_active_low"] is True
        assert line["capture_channel"] in (0, 1)  # stereo USB card: left or right


def test_no_gpio_is_used_twice_and_all_are_valid_bcm_pins_off_the_uart() -> None:
    pins = [line[key] for line in pinmap()["line"].values() for key in ("hook_gpio", "ring_gpio", "led_gpio")]
    assert len(pins) == len(set(pins)), "a GPIO is used twice"
    assert all(2 <= pin <= 27 for pin in pins)
    assert not UART_PINS & set(pins)


def test_two_lines_share_each_stereo_card_on_different_channels() -> None:
    lines = pinmap()["line"]
    assert {lines["1"]["capture_channel"], lines["2"]["capture_channel"]} == {0, 1}
    assert {lines["3"]["capture_channel"], lines["4"]["capture_channel"]} == {0, 1}


def test_console_uart_is_the_pl011_on_gpio14_15() -> None:
    assert pinmap()["console"]["uart"] == "ttyAMA0"


def test_bom_has_the_documented_columns_and_a_part_number_for_every_row() -> None:
    with (HW / "bom.csv").open(newline="") as f:
        assert next(csv.reader(f)) == BOM_COLUMNS
    for row in bom_rows():
        assert row["manufacturer"] and row["mpn"], row["ref"]
        assert float(row["qty"]) > 0
        assert row["side"] in {"line", "barrier", "pi", "system"}, row["ref"]


def test_every_netlist_part_is_in_the_bom_and_every_board_part_in_the_netlist() -> None:
    comps, _ = netlist()
    board = {row["ref"] for row in bom_rows() if row["side"] != "system"}
    assert set(comps) == board


def test_every_part_is_connected_and_every_pin_belongs_to_a_declared_part() -> None:
    comps, nets = netlist()
    used = set()
    for name, pins in nets.items():
        assert len(pins) >= 2, f"net {name} connects nothing"
        for pin in pins:
            ref, _, _ = pin.partition(".")
            assert ref in comps, f"net {name}: {pin} of an undeclared part"
            used.add(ref)
    assert used == set(comps)
    all_pins = [pin for pins in nets.values() for pin in pins]
    assert len(all_pins) == len(set(all_pins)), "a pin is on two nets"


def test_only_isolating_parts_connect_the_line_side_to_the_pi_side() -> None:
    comps, nets = netlist()
    side = {row["ref"]: row["side"] for row in bom_rows()}
    for name, pins in nets.items():
        sides = {side[pin.split(".")[0]] for pin in pins} - {"barrier"}
        assert sides <= {"line"} or sides <= {"pi"}, f"net {name} crosses the isolation barrier"


def test_pinmap_gpios_of_line_1_are_the_ones_wired_in_the_schematic() -> None:
    _, nets = netlist()
    line1 = pinmap()["line"]["1"]
    for key in ("hook_gpio", "ring_gpio", "led_gpio"):
        assert f"GPIO{line1[key]}" in nets, key


def test_schematic_svg_parses_and_labels_every_part() -> None:
    root = ET.parse(HW / "tap.svg").getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    text = " ".join("".join(el.itertext()) for el in root.iter("{http://www.w3.org/2000/svg}text"))
    labels = set(re.findall(r"[A-Z]+\d+", text))
    comps, _ = netlist()
    assert set(comps) <= labels, f"not drawn: {sorted(set(comps) - labels)}"
