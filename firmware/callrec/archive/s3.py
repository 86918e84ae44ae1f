"""An `s3://bucket/prefix` archive through boto3 (AWS, Ceph RGW, MinIO and the like).

Objects carry their SHA-256 as metadata (`x-amz-meta-sha256`). A single-part upload sends its
Content-MD5 and is verified by the returned ETag; larger files go as a multipart upload, verified by
computing the multipart ETag locally (MD5 of the part MD5s) and comparing. Write-once: an existing
key with the same SHA-256 is success, with another is `ArchiveConflict`. With `object_lock_days`
each object is put under Object Lock in COMPLIANCE mode until that retention date.
"""

from __future__ import annotations

import base64
import configparser
import datetime as dt
import hashlib
import io
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.config
import botocore.exceptions
from boto3.s3.transfer import TransferConfig

from callrec.archive.port import ArchiveConflict, ArchiveError, ArchiveRefused, Stored, sha256_of

PART_BYTES = 8 * 1024 * 1024
_REFUSED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "NoSuchBucket", "AllAccessDisabled", "403",
            "Forbidden"}


def read_credentials(path: Path | None) -> tuple[str, str]:
    if path is None:
        raise ArchiveRefused("archive.credentials_file is not set and there is no systemd credential "
                             "archive_credentials: the device cannot log in to S3")
    parser = configparser.ConfigParser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ArchiveRefused(f"archive.credentials_file: cannot read {path}: {error}") from None
    try:
        parser.read_string(text if text.lstrip().startswith("[") else "[default]\n" + text)
    except configparser.Error as error:
        raise ArchiveRefused(f"archive.credentials_file: {path} is not an INI file: {error}") from None
    for section in parser.sections():
        key, secret = parser.get(section, "aws_access_key_id", fallback=None), parser.get(
            section, "aws_secret_access_key", fallback=None)
        if key and secret:
            return key, secret
    raise ArchiveRefused(f"archive.credentials_file: {path} holds no aws_access_key_id and aws_secret_access_key")


class S3Archive:
    def __init__(self, url: str, endpoint: str | None, region: str, credentials: Path | None) -> None:
        parts = urlsplit(url)
        self.url = url
        self.bucket = parts.hostname or ""
        self.prefix = parts.path.strip("/")
        self._endpoint, self._region, self._credentials = endpoint, region, credentials
        self._s3: Any = None
        self._transfer = TransferConfig(multipart_threshold=PART_BYTES, multipart_chunksize=PART_BYTES)

    def _client(self) -> Any:
        if self._s3 is None:
            key, secret = read_credentials(self._credentials)
            self._s3 = boto3.client(
                "s3", endpoint_url=self._endpoint, region_name=self._region, aws_access_key_id=key,
                aws_secret_access_key=secret,
                config=botocore.config.Config(connect_timeout=10, read_timeout=30, retries={"max_attempts": 2},
                                              s3={"addressing_style": "path"},
                                              request_checksum_calculation="when_required",
                                              response_checksum_validation="when_required"))
        return self._s3

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _error(self, what: str, error: Exception) -> ArchiveError:
        if isinstance(error, botocore.exceptions.ClientError):
            code = error.response.get("Error", {}).get("Code", "")
            message = error.response.get("Error", {}).get("Message", "") or code
            if code in _REFUSED:
                return ArchiveRefused(f"{self.url}: {what} refused ({code}: {message}); check "
                                      "archive.credentials_file and the bucket's permissions")
            return ArchiveError(f"{self.url}: {what} failed ({code}: {message})")
        return ArchiveError(f"{self.url}: {what} failed: {error}")

    def put(self, key: str, data: bytes, *, retain_until: float | None = None) -> Stored:
        digest = sha256_of(data)
        existing = self.head(key)
        if existing is not None:
            if existing.sha256 == digest:
                return existing
            raise ArchiveConflict(f"{self.url}: {key} exists with other content; it is not replaced")
        extra: dict[str, Any] = {"Metadata": {"sha256": digest}}
        if retain_until is not None:
            extra["ObjectLockMode"] = "COMPLIANCE"
            extra["ObjectLockRetainUntilDate"] = dt.datetime.fromtimestamp(retain_until, tz=dt.UTC)
        s3 = self._client()
        try:
            if len(data) < PART_BYTES:
                md5 = hashlib.md5(data)   # noqa: S324 - S3's integrity check, not security
                reply = s3.put_object(Bucket=self.bucket, Key=self._key(key), Body=data,
                                      ContentMD5=base64.b64encode(md5.digest()).decode(), **extra)
                expected = f'"{md5.hexdigest()}"'
            else:
                s3.upload_fileobj(io.BytesIO(data), self.bucket, self._key(key), ExtraArgs=extra,
                                  Config=self._transfer)
                reply = s3.head_object(Bucket=self.bucket, Key=self._key(key))
                expected = f'"{_multipart_etag(data, PART_BYTES)}"'
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            raise self._error(f"uploading {key}", error) from None
        if reply.get("ETag") != expected:
            raise ArchiveError(f"{self.url}: {key} arrived damaged (ETag {reply.get('ETag')}, expected {expected})")
        stored = self.head(key)
        if stored is None or stored.size != len(data) or stored.sha256 != digest:
            raise ArchiveError(f"{self.url}: {key} is not as uploaded when read back")
        return stored

    def get(self, key: str) -> bytes:
        try:
            reply = self._client().get_object(Bucket=self.bucket, Key=self._key(key))
            return bytes(reply["Body"].read())
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            raise self._error(f"reading {key}", error) from None

    def head(self, key: str) -> Stored | None:
        try:
            reply = self._client().head_object(Bucket=self.bucket, Key=self._key(key))
        except botocore.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._error(f"looking up {key}", error) from None
        except botocore.exceptions.BotoCoreError as error:
            raise self._error(f"looking up {key}", error) from None
        until = reply.get("ObjectLockRetainUntilDate")
        mode = reply.get("ObjectLockMode")
        return Stored(key, int(reply.get("ContentLength", 0)), (reply.get("Metadata") or {}).get("sha256"),
                      until.astimezone(dt.UTC).isoformat() if until is not None and mode == "COMPLIANCE" else None)

    def list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        start = self._key(prefix.strip("/"))
        try:
            paginator = self._client().get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=start):
                for item in page.get("Contents", []):
                    name = str(item["Key"])
                    keys.append(name[len(self.prefix) + 1:] if self.prefix else name)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            raise self._error(f"listing {prefix}", error) from None
        return sorted(keys)

    def delete(self, key: str) -> None:
        try:
            self._client().delete_object(Bucket=self.bucket, Key=self._key(key))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            raise self._error(f"deleting {key}", error) from None

    def close(self) -> None:
        self._s3 = None


def _multipart_etag(data: bytes, part: int) -> str:
    digests = [hashlib.md5(data[at:at + part]).digest() for at in range(0, len(data), part)]  # noqa: S324
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"  # noqa: S324
