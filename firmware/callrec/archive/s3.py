"""An `s3://bucket/prefix` archive through boto3 (AWS, Ceph RGW, MinIO and the like).

S3 has no rename, so the server itself verifies before an object exists: a put under 8 MB is one
request with its Content-MD5 (and SHA-256 checksum, where the server implements checksums), larger
ones a multipart upload whose every part carries its own; the server refuses a body that does not
match, and an object appears only whole. Each part's ETag is compared as it is acknowledged, and the
stored object's size, ETag (the MD5, or the MD5 of the part MD5s) and SHA-256 (`x-amz-meta-sha256`)
after. A refused or failed upload is aborted (its parts removed), as are uploads of the same key a
kill left. A quota used up is `ArchiveFull`: retryable, nothing stored.

Write-once: an existing key with the same bytes (by size and ETag, else read back) is success; a
truncated copy of them (earlier firmware's unverified upload) is superseded by the verified whole
(under Object Lock or versioning the truncated version stays in the history, as the lock demands);
anything else is `ArchiveConflict`. With `object_lock_days` each object is put under Object Lock in
COMPLIANCE mode until that retention date.
"""

from __future__ import annotations

import base64
import configparser
import datetime as dt
import hashlib
import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.config
import botocore.exceptions

from callrec.archive import port
from callrec.archive.port import ArchiveError, ArchiveRefused, Standing, Stored

log = logging.getLogger(__name__)

PART_BYTES = 8 * 1024 * 1024
_FULL = {"QuotaExceeded": "quota is used up (QuotaExceeded)",
         "InsufficientCapacity": "storage is full (InsufficientCapacity)",
         "XMinioStorageFull": "storage is full (XMinioStorageFull)"}
_BOTO = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)
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
        digest = port.sha256_of(data)
        found = self._head(key)
        truncated = None
        if found is not None:
            held = self._standing(key, found, data)
            if held is Standing.SAME:
                return self._stored(key, found, digest)
            if held is Standing.OTHER:
                raise port.conflict(self.url, key, int(found.get("ContentLength", 0)),
                                    (found.get("Metadata") or {}).get("sha256"))
            truncated = found
        extra: dict[str, Any] = {"Metadata": {"sha256": digest}}
        if retain_until is not None:
            extra["ObjectLockMode"] = "COMPLIANCE"
            extra["ObjectLockRetainUntilDate"] = dt.datetime.fromtimestamp(retain_until, tz=dt.UTC)
        try:
            if len(data) < PART_BYTES:
                self._put_whole(key, data, extra)
            else:
                self._put_parts(key, data, extra)
        except _BOTO as error:
            raise self._error(f"uploading {key}", error) from None
        stored = self._verify(key, data, digest)
        if truncated is not None:
            log.warning("%s%s", port.healing(self.url, key, int(truncated.get("ContentLength", 0)), len(data)),
                        _history(truncated))
        return stored

    def _put_whole(self, key: str, data: bytes, extra: dict[str, Any]) -> None:
        """One request the server checks against its Content-MD5 (and SHA-256) before storing it."""
        md5 = hashlib.md5(data)   # noqa: S324 - S3's integrity check, not security
        try:
            reply = self._client().put_object(Bucket=self.bucket, Key=self._key(key), Body=data,
                                              ContentMD5=_b64(md5.digest()),
                                              ChecksumSHA256=_b64(hashlib.sha256(data).digest()), **extra)
        except botocore.exceptions.ClientError as error:
            raise self._refusal(key, error, 0, len(data)) from None
        if reply.get("ETag") != f'"{md5.hexdigest()}"':
            raise ArchiveError(f"{self.url}: {key} arrived damaged (ETag {reply.get('ETag')}, expected "
                               f'"{md5.hexdigest()}"); retried later')

    def _put_parts(self, key: str, data: bytes, extra: dict[str, Any]) -> None:
        """A multipart upload, each part checked by the server against its own MD5 and SHA-256 and its
        ETag compared here; aborted (its parts removed) unless it completes."""
        s3, name = self._client(), self._key(key)
        self._abort_stale_uploads(key)
        upload = s3.create_multipart_upload(Bucket=self.bucket, Key=name, ChecksumAlgorithm="SHA256", **extra)
        parts: list[dict[str, Any]] = []
        sent = 0
        try:
            for number, at in enumerate(range(0, len(data), PART_BYTES), start=1):
                chunk = data[at:at + PART_BYTES]
                md5 = hashlib.md5(chunk)   # noqa: S324 - S3's integrity check, not security
                checksum = _b64(hashlib.sha256(chunk).digest())
                try:
                    reply = s3.upload_part(Bucket=self.bucket, Key=name, UploadId=upload["UploadId"],
                                           PartNumber=number, Body=chunk, ContentMD5=_b64(md5.digest()),
                                           ChecksumSHA256=checksum)
                except botocore.exceptions.ClientError as error:
                    raise self._refusal(key, error, sent, len(data)) from None
                if reply.get("ETag") != f'"{md5.hexdigest()}"':
                    raise ArchiveError(f"{self.url}: part {number} of {key} arrived damaged (ETag "
                                       f"{reply.get('ETag')}, expected \"{md5.hexdigest()}\"); retried later")
                parts.append({"ETag": reply["ETag"], "PartNumber": number, "ChecksumSHA256": checksum})
                sent += len(chunk)
            s3.complete_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload["UploadId"],
                                         MultipartUpload={"Parts": parts})
        except BaseException:
            try:
                s3.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload["UploadId"])
            except _BOTO as error:   # the next put of this key aborts it
                log.warning("archive: cannot abort the failed upload of %s yet: %s", key, error)
            raise

    def _abort_stale_uploads(self, key: str) -> None:
        """Multipart uploads of this key a kill left: their parts count against the quota."""
        s3, name = self._client(), self._key(key)
        try:
            listing = s3.list_multipart_uploads(Bucket=self.bucket, Prefix=name)
            for upload in listing.get("Uploads", []):
                if upload.get("Key") == name:
                    s3.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload["UploadId"])
        except _BOTO as error:   # not allowed to list them: a lifecycle rule has to remove them
            log.info("archive: cannot look for unfinished uploads of %s: %s", key, error)

    def _verify(self, key: str, data: bytes, digest: str) -> Stored:
        """The stored object is what was sent: size, ETag, our SHA-256, and the server's own SHA-256
        where it keeps one for a single-part object."""
        reply = self._head(key, checksum=True)
        if reply is None:
            raise ArchiveError(f"{self.url}: {key} is not there after the upload; retried later")
        checksum = reply.get("ChecksumSHA256")
        problems = [what for what, bad in (
            ("size", int(reply.get("ContentLength", -1)) != len(data)),
            ("ETag", reply.get("ETag") not in _etags(data)),
            ("SHA-256 metadata", (reply.get("Metadata") or {}).get("sha256") != digest),
            ("SHA-256 checksum", len(data) < PART_BYTES and checksum is not None
             and checksum != _b64(hashlib.sha256(data).digest()))) if bad]
        if problems:
            raise ArchiveError(f"{self.url}: {key} is not as uploaded when read back ({', '.join(problems)} "
                               "differ); retried later")
        return self._stored(key, reply, digest)

    def _standing(self, key: str, found: dict[str, Any], data: bytes) -> Standing:
        """How the object under `key` stands to `data`: by size and ETag, else by its bytes."""
        size = int(found.get("ContentLength", 0))
        if size == len(data) and found.get("ETag") in _etags(data):
            return Standing.SAME
        if size > len(data):
            return Standing.OTHER
        held = self.get(key)
        return port.standing(len(held), port.sha256_of(held), data)

    def _stored(self, key: str, reply: dict[str, Any], digest: str) -> Stored:
        return Stored(key, int(reply.get("ContentLength", 0)), digest, _retention(reply))

    def _refusal(self, key: str, error: botocore.exceptions.ClientError, sent: int, total: int) -> ArchiveError:
        code = error.response.get("Error", {}).get("Code", "")
        if code in _FULL:
            return port.full(self.url, key, sent, total, _FULL[code])
        return self._error(f"uploading {key}", error)

    def get(self, key: str) -> bytes:
        try:
            reply = self._client().get_object(Bucket=self.bucket, Key=self._key(key))
            return bytes(reply["Body"].read())
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            raise self._error(f"reading {key}", error) from None

    def head(self, key: str) -> Stored | None:
        reply = self._head(key)
        if reply is None:
            return None
        return Stored(key, int(reply.get("ContentLength", 0)), (reply.get("Metadata") or {}).get("sha256"),
                      _retention(reply))

    def _head(self, key: str, *, checksum: bool = False) -> dict[str, Any] | None:
        extra = {"ChecksumMode": "ENABLED"} if checksum else {}
        try:
            reply: dict[str, Any] = self._client().head_object(Bucket=self.bucket, Key=self._key(key), **extra)
        except botocore.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._error(f"looking up {key}", error) from None
        except botocore.exceptions.BotoCoreError as error:
            raise self._error(f"looking up {key}", error) from None
        return reply

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


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _etags(data: bytes) -> tuple[str, str]:
    """The ETags an S3 server gives `data` stored in one request or in parts of PART_BYTES."""
    return f'"{hashlib.md5(data).hexdigest()}"', f'"{_multipart_etag(data, PART_BYTES)}"'  # noqa: S324


def _retention(reply: dict[str, Any]) -> str | None:
    """The COMPLIANCE retention date of a head_object reply, ISO 8601, or None."""
    until = reply.get("ObjectLockRetainUntilDate")
    if until is None or reply.get("ObjectLockMode") != "COMPLIANCE":
        return None
    return str(until.astimezone(dt.UTC).isoformat())


def _history(truncated: dict[str, Any]) -> str:
    """What becomes of a superseded truncated object: under versioning (always, with Object Lock)
    it stays as an older version; a locked one cannot be deleted before its date."""
    version = truncated.get("VersionId")
    if not version or version == "null":
        return ""
    until = truncated.get("ObjectLockRetainUntilDate")
    if until is not None and truncated.get("ObjectLockMode"):
        return (f"; the truncated version {version} stays in the bucket's history under Object Lock "
                f"({truncated['ObjectLockMode']}) until {until.astimezone(dt.UTC).isoformat()}, as the lock demands")
    return f"; the truncated version {version} stays in the bucket's history"


def _multipart_etag(data: bytes, part: int) -> str:
    digests = [hashlib.md5(data[at:at + part]).digest() for at in range(0, len(data), part)]  # noqa: S324
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"  # noqa: S324
