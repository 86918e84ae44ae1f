"""Slow salted hashes of the secrets people type: the viewer's passwords, the console's passphrase.

`hashlib.scrypt` (OpenSSL's scrypt, n=2^14, r=8, p=1, a 16-byte random salt, 32-byte digest) makes
each guess cost about 16 MB and tens of milliseconds, so a stolen configuration file or users file
does not give the secret away cheaply; comparison is in constant time. One form for both:
`scrypt$<salt base64>$<digest base64>`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, **SCRYPT, dklen=32)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def check_password(password: str, stored: str) -> bool:
    try:
        kind, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        expected = base64.b64decode(digest, validate=True)
        actual = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt, validate=True), **SCRYPT,
                                dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def is_password_hash(stored: str) -> bool:
    """The stored form looks like one `hash_password` makes (for validating configuration)."""
    parts = stored.split("$")
    if len(parts) != 3 or parts[0] != "scrypt":
        return False
    try:
        return len(base64.b64decode(parts[1], validate=True)) >= 8 and len(base64.b64decode(parts[2],
                                                                                               validate=True)) == 32
    except ValueError:
        return False
