"""Evidence: the device key, the hash chain over calls, the audit log, verification and export."""

from callrec.evidence.audit import AuditLog, audit_path, cli_actor
from callrec.evidence.chain import Chain, chain_path, file_sha256, link, record_sha256, sidecar_of
from callrec.evidence.commands import register as register_commands
from callrec.evidence.export import build_bundle
from callrec.evidence.keys import DeviceKey, DeviceKeyError, key_paths, load_public, parse_public
from callrec.evidence.ledger import GENESIS, Ledger, LedgerProblem, check_lines
from callrec.evidence.passwords import check_password, hash_password, is_password_hash
from callrec.evidence.store import Evidence
from callrec.evidence.verify import Problem, Report
from callrec.evidence.verify import verify as verify_data

__all__ = [
    "AuditLog", "Chain", "DeviceKey", "DeviceKeyError", "Evidence", "GENESIS", "Ledger", "LedgerProblem", "Problem",
    "Report", "audit_path", "build_bundle", "chain_path", "check_lines", "check_password", "cli_actor", "file_sha256",
    "hash_password", "is_password_hash", "key_paths", "link", "load_public", "parse_public", "record_sha256",
    "register_commands", "sidecar_of", "verify_data"
]
