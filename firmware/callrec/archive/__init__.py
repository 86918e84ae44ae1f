"""The office archive: a port with file, SFTP and S3 backends, the uploader, and verification."""

from callrec.archive.commands import archive_settings, export_from_archive, verify_from_archive, witness_from_archive
from callrec.archive.commands import register as register_commands
from callrec.archive.file import FileArchive
from callrec.archive.office import DeviceArchive, archive_witness, devices
from callrec.archive.port import (
    ArchiveConflict,
    ArchiveError,
    ArchiveFull,
    ArchiveRefused,
    ArchiveTarget,
    Stored,
    sha256_of,
)
from callrec.archive.queue import ArchiveQueue
from callrec.archive.targets import open_target
from callrec.archive.uploader import Backlog, Uploader, recording_key, witness_key

__all__ = [
    "ArchiveConflict", "ArchiveError", "ArchiveFull", "ArchiveQueue", "ArchiveRefused", "ArchiveTarget", "Backlog",
    "DeviceArchive", "FileArchive", "Stored", "Uploader", "archive_settings", "archive_witness", "devices",
    "export_from_archive", "open_target", "recording_key", "register_commands", "sha256_of", "verify_from_archive",
    "witness_from_archive", "witness_key"
]
