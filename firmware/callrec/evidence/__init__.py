"""Evidence: the device key, the hash chain over calls, the audit log, verification and export."""

from callrec.evidence.audit import AuditLog, audit_path, cli_actor
from callrec.evidence.chain import Chain, chain_path, file_sha256, link, record_sha256, sidecar_of
from callrec.evidence.commands import register as register_commands
from callrec.evidence.keys import DeviceKey, DeviceKeyError, load_public, parse_public
from callrec.evidence.ledger import GENESIS, Ledger, LedgerProblem
from callrec.evidence.store import Evidence

__all__ = [
    "AuditLog", "Chain", "DeviceKey", "DeviceKeyError", "Evidence", "GENESIS", "Ledger", "LedgerProblem",
    "audit_path", "chain_path", "cli_actor", "file_sha256", "link", "load_public", "parse_public",
    "record_sha256", "register_commands", "sidecar_of"
]
