"""Which backend serves an archive URL."""

from pathlib import Path
from urllib.parse import unquote, urlsplit

from callrec.archive.file import FileArchive
from callrec.archive.port import ArchiveError, ArchiveTarget
from callrec.config import ArchiveConfig


def open_target(config: ArchiveConfig) -> ArchiveTarget:
    """The backend for `config.url` (not connected yet: the first operation connects)."""
    if not config.url:
        raise ArchiveError("no archive is configured ([archive] url)")
    parts = urlsplit(config.url)
    if parts.scheme == "file":
        return FileArchive(config.url, Path(unquote(parts.path)))
    if parts.scheme == "sftp":
        from callrec.archive.sftp import SftpArchive

        assert config.ssh_key is not None and config.known_hosts is not None   # the config requires them
        return SftpArchive(config.url, config.ssh_key, config.known_hosts)
    from callrec.archive.s3 import S3Archive

    return S3Archive(config.url, config.endpoint, config.region, config.credentials_path())
