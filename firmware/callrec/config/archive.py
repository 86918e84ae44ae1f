"""The `[archive]` table: where recordings go to be safe, and how (docs/archive.md).

The key names are contracts (issue 12): `url` (`sftp://user@host[:port]/path`, `s3://bucket/prefix`,
or `file:///path` for a mounted NAS share), `ssh_key` and `known_hosts` for SFTP; `endpoint`,
`region` and `credentials_file` for S3 (an INI file with `aws_access_key_id` and
`aws_secret_access_key`; unset: the systemd credential `$CREDENTIALS_DIRECTORY/archive_credentials`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from callrec.config.toml import TomlModel

CREDENTIAL_NAME = "archive_credentials"


class ArchiveConfig(TomlModel):
    url: str | None = Field(None, description="sftp://user@host[:port]/path, s3://bucket/prefix or file:///path; "
                                              "unset: no offload")
    ssh_key: Path | None = Field(None, description="SFTP: the private key file the device logs in with")
    known_hosts: Path | None = Field(None, description="SFTP: the pinned host key(s), OpenSSH known_hosts format")
    endpoint: str | None = Field(None, description="S3: the endpoint URL, e.g. https://s3.example.com; unset: AWS")
    region: str = Field("us-east-1", min_length=1, description="S3: the region")
    credentials_file: Path | None = Field(
        None, description="S3: INI file with aws_access_key_id / aws_secret_access_key; unset: the systemd "
                          f"credential $CREDENTIALS_DIRECTORY/{CREDENTIAL_NAME}")
    keep_local_days: float = Field(7.0, ge=0, le=36500,
                                   description="A local copy is deleted once archived and this old (never held)")
    apply_retention: bool = Field(False, description="Retention deletes the archived copy too")
    alarm_after_s: float = Field(900.0, gt=0, le=604800,
                                 description="Alarm when the archive has been unreachable this long")
    max_backlog: int = Field(500, ge=1, le=10_000_000, description="Alarm when more calls than this wait")
    object_lock_days: int | None = Field(
        None, ge=1, le=36500, description="S3: store every object under Object Lock (COMPLIANCE) until this many "
                                          "days after its call")
    retry_max_s: float = Field(300.0, gt=0, le=86400, description="Longest wait between upload attempts")

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("sftp", "s3", "file"):
            raise ValueError(f"{value!r}: the archive URL starts with sftp://, s3:// or file://")
        if parts.scheme in ("sftp", "s3") and not parts.hostname:
            raise ValueError(f"{value!r}: names no {'host' if parts.scheme == 'sftp' else 'bucket'}")
        if parts.scheme == "sftp" and not parts.username:
            raise ValueError(f"{value!r}: names no user (sftp://user@host/path)")
        if parts.scheme == "file" and not parts.path.startswith("/"):
            raise ValueError(f"{value!r}: a file:// archive is an absolute path (file:///srv/archive)")
        return value

    @model_validator(mode="after")
    def _what_the_scheme_needs(self) -> ArchiveConfig:
        scheme = self.scheme
        if scheme == "sftp":
            missing = [name for name in ("ssh_key", "known_hosts") if getattr(self, name) is None]
            if missing:
                raise ValueError(f"an sftp:// archive needs {' and '.join(missing)} (the device's key and the "
                                 "server's pinned host key)")
        if scheme != "s3" and self.object_lock_days is not None:
            raise ValueError("object_lock_days works on s3:// archives only (SFTP uploads never overwrite anyway)")
        return self

    @property
    def scheme(self) -> str | None:
        return urlsplit(self.url).scheme if self.url else None

    def credentials_path(self) -> Path | None:
        if self.credentials_file is not None:
            return self.credentials_file
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        return Path(directory) / CREDENTIAL_NAME if directory else None

    def with_url(self, url: str) -> ArchiveConfig:
        data: dict[str, Any] = self.model_dump()
        data["url"] = url
        return ArchiveConfig.model_validate(data)
