"""Evidence: the device key, the hash chain over calls, the audit log, legal holds, the witnessed
heads of both ledgers, verification and export."""

from callrec.evidence.audit import AuditLog, audit_path, cli_actor
from callrec.evidence.chain import Chain, chain_path, file_sha256, link, record_sha256, sidecar_of
from callrec.evidence.commands import register as register_commands
from callrec.evidence.export import build_bundle
from callrec.evidence.heads import (
    HEAD_EVENT,
    Heads,
    HeadWatcher,
    Witness,
    WitnessUnavailable,
    compare,
    journal_witness,
    latest_head,
    read_heads,
    read_witness_document,
    witness_document,
)
from callrec.evidence.keys import DeviceKey, DeviceKeyError, key_paths, load_public, parse_public
from callrec.evidence.ledger import GENESIS, Ledger, LedgerHead, LedgerProblem, check_lines, parse_json, parse_line
from callrec.evidence.passwords import check_password, hash_password, is_password_hash
from callrec.evidence.store import Evidence, UnknownCall
from callrec.evidence.verify import Problem, Report, check_heads
from callrec.evidence.verify import verify as verify_data

__all__ = [
    "AuditLog", "Chain", "DeviceKey", "DeviceKeyError", "Evidence", "GENESIS", "HEAD_EVENT", "HeadWatcher", "Heads",
    "Ledger", "LedgerHead", "LedgerProblem", "Problem", "Report", "UnknownCall", "Witness", "WitnessUnavailable",
    "audit_path", "build_bundle", "chain_path", "check_heads", "check_lines", "check_password", "cli_actor",
    "compare", "file_sha256", "hash_password", "is_password_hash", "journal_witness", "key_paths", "latest_head",
    "link", "load_public", "parse_json", "parse_line", "parse_public", "read_heads", "read_witness_document",
    "record_sha256", "register_commands", "sidecar_of", "verify_data", "witness_document"
]
