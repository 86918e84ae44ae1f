"""Privacy: encryption at rest (age), retention with legal hold, the disk guard, the purpose notice."""

from callrec.privacy.crypto import (
    AGE_MAGIC,
    FRAMES_MAGIC,
    CryptoError,
    EncryptedPartFile,
    FramesInfo,
    Recipients,
    decrypt_age,
    decrypt_frames,
    encrypt_stream,
    load_identities,
    new_identity,
    scan_frames,
)
from callrec.privacy.retention import ALARM_FULL, ALARM_LOW, DiskState, Keeper, due, kept, started_wall

__all__ = [
    "AGE_MAGIC", "ALARM_FULL", "ALARM_LOW", "CryptoError", "DiskState", "EncryptedPartFile", "FRAMES_MAGIC",
    "FramesInfo", "Keeper", "Recipients", "decrypt_age", "decrypt_frames", "due", "encrypt_stream", "kept",
    "load_identities", "new_identity", "scan_frames", "started_wall"
]
