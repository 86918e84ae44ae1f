"""The core: the one owner of line and call state (see engine.py)."""

from callrec.core.engine import Core
from callrec.core.state import AUDIO_BATCH_PERIODS, PREROLL_SLACK_S, VOICE_DBFS, ControlRequest, Player, Shutdown

__all__ = ["AUDIO_BATCH_PERIODS", "ControlRequest", "Core", "PREROLL_SLACK_S", "Player", "Shutdown", "VOICE_DBFS"]
