"""The `[privacy]` and `[retention]` tables: encryption, the purpose notice, how long calls are kept.

Recordings are personal data (APPI, docs/privacy.md). The purpose of use must be published (Art.
21): it goes with every call record, `status`, the MQTT discovery and every export. Keeping calls
no longer than needed (Art. 22) is the retention policy; the disk guard keeps a full card from
ending the recording of new calls.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from callrec.config.toml import MULTILINE, TomlModel

DEFAULT_PURPOSE = (
    "この通話は、応対品質の向上、ご依頼内容の確認および言った・言わないの紛争防止のために録音しています。"
    "録音は設定された保存期間の経過後に自動的に削除します。録音の開示・削除のご請求は当社の個人情報"
    "お問い合わせ窓口までお申し出ください。\n"
    "This call is recorded to improve our service, to confirm what was agreed and to settle disputes "
    "about what was said. Recordings are deleted automatically when the configured retention period "
    "ends. To ask for a copy of a recording of you, or for its deletion, contact our privacy desk."
)


class PrivacyConfig(TomlModel):
    recipient: tuple[str, ...] = Field(
        (), description="age X25519 recipient(s) (age1…) recordings are encrypted to; a string or an array. "
                        "Empty: recordings are stored unencrypted")
    purpose: str = Field(DEFAULT_PURPOSE, min_length=1, json_schema_extra=MULTILINE,
                         description="Purpose of use (APPI Art. 21): with each call record, in status, discovery "
                                     "and every export")

    @field_validator("recipient", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("recipient")
    @classmethod
    def _age_recipients(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from callrec.privacy import CryptoError, Recipients

        problems = []
        for number, text in enumerate(value):
            try:
                Recipients.parse([text])
            except CryptoError as error:
                problems.append(f"[{number}]: {error}")
        if problems:
            raise ValueError("; ".join(problems))
        return tuple(text.strip() for text in value)

    @property
    def encrypted(self) -> bool:
        return bool(self.recipient)


class RetentionConfig(TomlModel):
    days: int = Field(90, ge=1, le=36500, description="Calls are deleted this many days after they started")
    inbound_days: int | None = Field(None, ge=1, le=36500, description="Overrides days for inbound calls")
    outbound_days: int | None = Field(None, ge=1, le=36500, description="Overrides days for outbound calls")
    min_free_percent: float = Field(
        10.0, ge=0, le=50, description="Disk guard: an alarm below twice this free; below it the oldest unheld "
                                       "recordings are deleted")
    keep_marked: bool = Field(True, description="Calls with a mark (tag) are kept like held ones")

    def days_for(self, direction: str | None) -> int:
        if direction == "inbound" and self.inbound_days is not None:
            return self.inbound_days
        if direction == "outbound" and self.outbound_days is not None:
            return self.outbound_days
        return self.days
