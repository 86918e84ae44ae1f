"""The archive wired into the service: the durable queue, the target, the uploader thread.

The uploader hears `recording.saved` on the bus and tells the finisher (the index's writer) when
the archive confirmed a call; retention reaches the archive through the queue's deletions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from callrec.archive import ArchiveQueue, Stored, Uploader, open_target, recording_key
from callrec.config import Config
from callrec.events import EventBus
from callrec.recording import Archived
from callrec.store import CallIndex

QUEUE_FILE = "archive.sqlite"


def make_uploader(config: Config, index: CallIndex, bus: EventBus | None,
                  tell_index: Callable[[Archived], None]) -> Uploader | None:
    """None without `[archive] url`."""
    archive = config.archive
    if not archive.url:
        return None
    data_dir = config.storage.data_dir
    queue = ArchiveQueue(data_dir / QUEUE_FILE)
    url = archive.url

    def on_archived(call_id: str, at: float, stored: Stored) -> None:
        tell_index(Archived(call_id, at, stored.key, stored.sha256, stored.size, url))

    return Uploader(data_dir, config.mqtt.device_id, archive, open_target(archive), queue, index.get, on_archived,
                    bus)


def remote_deleter(uploader: Uploader) -> Callable[[dict[str, Any]], None]:
    """Retention applied to the archive: the call's objects are deleted there later, durably."""

    def delete(record: dict[str, Any]) -> None:
        key = recording_key(uploader.device_id, record)
        if key is not None:
            sidecar = key.rsplit("/", 1)[0] + f"/{record['call_id']}.json"
            uploader.queue.delete_later([key, sidecar], time.time())

    return delete
