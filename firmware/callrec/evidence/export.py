"""The disclosure export (APPI Art. 33): every recording of one party, with its records, in one zip.

The bundle holds the recordings byte for byte (still encrypted when they are: the office decrypts
with `callrec decrypt`), the call records from the index and the sidecars as sealed, the purpose
of use in force, the chain (from the first exported call's entry to the head, so each call's
entry can be linked to a head a dashboard holds), a manifest with the hash of every file and each
call's chain proof, and `summary.html` for the person who asked. Written under a temporary name
and renamed, so a bundle is never half there; the export is audited.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callrec.events import utc_iso
from callrec.evidence.chain import Chain, sidecar_of
from callrec.evidence.keys import DeviceKey

BUNDLE_FORMAT = "callrec-export/1"


@dataclass(frozen=True)
class Exported:
    path: Path
    calls: list[str]
    sha256: str
    bytes: int


def export_bundle(data_dir: Path, records: list[dict[str, Any]], chain: Chain, key: DeviceKey | None,
                  purpose: str, out: Path, *, query: dict[str, Any], device_name: str) -> Exported:
    """The bundle from this device's data directory."""

    def read(relative: str) -> bytes | None:
        try:
            return (data_dir / relative).read_bytes()
        except FileNotFoundError:
            return None

    return build_bundle(records, read, list(chain.entries()), key.public_id if key is not None else None, purpose,
                        out, query=query, device_name=device_name)


def build_bundle(records: list[dict[str, Any]], read: Callable[[str], bytes | None], entries: list[dict[str, Any]],
                 public_key: str | None, purpose: str, out: Path, *, query: dict[str, Any],
                 device_name: str) -> Exported:
    """The bundle from any source: `read(relative path)` gives a file's bytes (None: not there),
    `entries` the device's chain (from its data directory or its archive segments)."""
    records = sorted(records, key=lambda r: str(r["call_id"]))
    sealed = {str(e.get("call_id")): e for e in entries if e.get("kind") == "call"}
    head = str(entries[-1]["hash"]) if entries else None
    seqs = [int(sealed[r["call_id"]]["seq"]) for r in records if r["call_id"] in sealed]
    first = min(seqs) if seqs else None
    segment = [e for e in entries if first is not None and isinstance(e.get("seq"), int) and e["seq"] >= first]
    files: dict[str, str] = {}
    calls: list[dict[str, Any]] = []
    tmp = out.with_name(out.name + ".tmp")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
            def put(name: str, data: bytes, *, stored: bool = False) -> None:
                bundle.writestr(name, data, compress_type=zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED)
                files[name] = hashlib.sha256(data).hexdigest()

            for record in records:
                call_id = str(record["call_id"])
                item: dict[str, Any] = {"call_id": call_id, "started_at": record.get("started_at"),
                                        "status": record.get("status"), "chain": sealed.get(call_id)}
                relative = (record.get("recording") or {}).get("path")
                audio = read(relative) if relative else None
                if relative and audio is not None:
                    name = f"recordings/{Path(relative).name}"
                    put(name, audio, stored=True)
                    item["recording"] = name
                    item["encryption"] = (record.get("recording") or {}).get("encryption")
                    sidecar_name = sidecar_of(Path(relative)).name
                    sidecar = read(str(Path(relative).with_name(sidecar_name)))
                    if sidecar is not None:
                        put(f"sidecars/{sidecar_name}", sidecar)
                        item["sidecar"] = f"sidecars/{sidecar_name}"
                else:
                    item["recording"] = None
                    item["note"] = "the recording file is not on the device (missing, or never made)"
                put(f"records/{call_id}.json", json.dumps(record, indent=2, ensure_ascii=False).encode("utf-8"))
                item["record"] = f"records/{call_id}.json"
                calls.append(item)
            put("purpose.txt", purpose.encode("utf-8") + b"\n")
            put("chain.jsonl", "".join(json.dumps(e, ensure_ascii=False, separators=(",", ":")) + "\n"
                                       for e in segment).encode("utf-8"))
            put("summary.html", _summary(records, calls, purpose, device_name, query).encode("utf-8"))
            manifest = {
                "format": BUNDLE_FORMAT, "created_at": utc_iso(time.time()), "device": device_name,
                "device_public_key": public_key,
                "chain_head": head, "query": query, "calls": calls, "files": files,
                "how_to_check": "each file's SHA-256 is listed here; each call's chain entry holds the SHA-256 of "
                                "its recording and sidecar and links (prev) to the next entries in chain.jsonl, "
                                "signed with the device key; `callrec decrypt --identity KEY bundle.zip` turns "
                                "encrypted recordings back into audio",
            }
            bundle.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False))
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with open(out, "rb") as bundle_file:
        digest = hashlib.file_digest(bundle_file, "sha256").hexdigest()
    return Exported(out, [str(r["call_id"]) for r in records], digest, out.stat().st_size)


def _summary(records: list[dict[str, Any]], calls: list[dict[str, Any]], purpose: str, device: str,
             query: dict[str, Any]) -> str:
    def cell(value: Any) -> str:
        return html.escape("" if value is None else str(value))

    rows = []
    for record, item in zip(records, calls, strict=True):
        rows.append("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in (
            record.get("call_id"), record.get("started_at"), record.get("line"), record.get("direction"),
            record.get("caller_number") or record.get("dialed_number"), record.get("duration_s"),
            record.get("status"), item.get("recording") or "—",
            "encrypted (age)" if item.get("encryption") else "")) + "</tr>")
    asked = ", ".join(f"{k}={v}" for k, v in query.items() if v)
    return f"""<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>通話録音の開示 / Disclosure of call recordings</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #999;padding:4px 8px}}</style>
</head><body>
<h1>通話録音の開示 / Disclosure of call recordings</h1>
<p>Device: {cell(device)} · exported {cell(utc_iso(time.time()))} · request: {cell(asked)}</p>
<h2>利用目的 / Purpose of use</h2>
<p style="white-space:pre-wrap">{cell(purpose)}</p>
<h2>{len(records)} call(s)</h2>
<table><tr><th>Call</th><th>Started (UTC)</th><th>Line</th><th>Direction</th><th>Number</th><th>Seconds</th>
<th>Status</th><th>Recording</th><th></th></tr>
{''.join(rows)}
</table>
<p>Hashes of every file are in manifest.json; the evidence chain in chain.jsonl.</p>
</body></html>
"""
