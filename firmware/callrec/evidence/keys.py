"""The device's signing key: an Ed25519 key pair made on first start, kept in the data directory.

Each chain and audit entry is signed with it, so an office that pinned the device's public key can
tell entries this device wrote from entries somebody wrote later with a hash function. The private
key is owner-only (0600 in a 0700 directory); the public key beside it is world-readable, so
`callrec verify` works for any user and prints it for pinning. Signing only: this key cannot
decrypt anything (recordings are encrypted to the office's age recipient, privacy/crypto.py).
"""

from __future__ import annotations

import base64
import contextlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from callrec.errors import CallrecError

PREFIX = "ed25519:"


class DeviceKeyError(CallrecError, ValueError):
    """A device key or pinned public key that cannot be read."""


def evidence_dir(data_dir: Path) -> Path:
    return data_dir / "evidence"


def key_paths(data_dir: Path) -> tuple[Path, Path]:
    directory = evidence_dir(data_dir)
    return directory / "device.key", directory / "device.pub"


def public_id(public: Ed25519PublicKey) -> str:
    """The public key as printed and pinned: `ed25519:` and the 32 raw bytes in base64."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PREFIX + base64.b64encode(raw).decode("ascii")


def parse_public(text: str) -> Ed25519PublicKey:
    value = text.strip()
    if not value.startswith(PREFIX):
        raise DeviceKeyError(f"a device public key starts with {PREFIX!r} (as `callrec verify` prints it), "
                             f"not {value[:20]!r}")
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(value[len(PREFIX):], validate=True))
    except ValueError as error:
        raise DeviceKeyError(f"not an Ed25519 public key: {value[:60]!r} ({error})") from None


class DeviceKey:
    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = private.public_key()
        self.public_id = public_id(self.public)

    @classmethod
    def load_or_create(cls, data_dir: Path) -> DeviceKey:
        """The data directory's key, made (owner-only) when there is none yet."""
        private_path, public_path = key_paths(data_dir)
        if private_path.exists():
            try:
                loaded = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
            except (ValueError, TypeError) as error:
                raise DeviceKeyError(f"{private_path}: not a readable Ed25519 key ({error}); move it aside to make "
                                "a new one (entries signed with the old key then verify only against its "
                                "public key)") from None
            if not isinstance(loaded, Ed25519PrivateKey):
                raise DeviceKeyError(f"{private_path}: not an Ed25519 key")
            key = cls(loaded)
        else:
            private_path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):
                os.chmod(private_path.parent, 0o700)
            key = cls(Ed25519PrivateKey.generate())
            pem = key._private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption())
            tmp = private_path.with_name(private_path.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, private_path)
        shown = public_path.read_text(encoding="ascii", errors="replace").strip() if public_path.exists() else ""
        if shown != key.public_id:
            public_path.write_text(key.public_id + "\n", encoding="ascii")
            os.chmod(public_path, 0o644)
        return key

    def sign(self, data: bytes) -> str:
        return base64.b64encode(self._private.sign(data)).decode("ascii")


def load_public(data_dir: Path) -> Ed25519PublicKey | None:
    """The device's public key from the data directory (no private key needed), or None."""
    _private, public_path = key_paths(data_dir)
    try:
        return parse_public(public_path.read_text(encoding="ascii"))
    except (OSError, UnicodeDecodeError):
        return None


def signature_valid(public: Ed25519PublicKey, data: bytes, signature: str) -> bool:
    try:
        public.verify(base64.b64decode(signature, validate=True), data)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
