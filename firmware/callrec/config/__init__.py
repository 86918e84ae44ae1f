"""The configuration: one TOML file, its models, the region profiles and the MQTT settings."""

from callrec.config.archive import ArchiveConfig
from callrec.config.console import ConsoleConfig, salvage_console
from callrec.config.edit import Edit, EditError, parse_value, set_key
from callrec.config.health import HealthConfig
from callrec.config.model import (
    ASSETS,
    DEFAULT_CONFIG_PATH,
    AnnouncementConfig,
    AudioConfig,
    Config,
    ConfigError,
    HookConfig,
    LineConfig,
    SignalsConfig,
    StorageConfig,
    TelephonyConfig,
    load,
    parse,
)
from callrec.config.mqtt import MqttSettings, default_device_id
from callrec.config.privacy import DEFAULT_PURPOSE, PrivacyConfig, RetentionConfig
from callrec.config.regions import PROFILES, RegionProfile, Tone
from callrec.config.toml import (
    TomlModel,
    control_character_problem,
    field_problems,
    key_path,
    report,
    toml_document,
)

__all__ = [
    "ArchiveConfig", "ASSETS", "AnnouncementConfig", "AudioConfig", "Config", "ConfigError", "ConsoleConfig",
    "DEFAULT_CONFIG_PATH", "Edit", "EditError", "DEFAULT_PURPOSE", "HealthConfig", "HookConfig", "LineConfig",
    "MqttSettings", "PROFILES", "PrivacyConfig", "RegionProfile", "RetentionConfig", "SignalsConfig", "StorageConfig",
    "TelephonyConfig", "TomlModel", "Tone", "control_character_problem", "default_device_id", "field_problems",
    "key_path", "load", "parse", "parse_value", "set_key", "report", "salvage_console", "toml_document"
]
