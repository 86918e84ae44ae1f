"""Line intelligence from the audio: DTMF (ITU-T Q.24), caller ID, call-progress tones (docs/dsp.md).

`LineDsp` runs every detector on a line; the modules (`dtmf`, `callerid`, `tones`, `fsk`, `g711`,
`gen`, `battery`, `analyze`) are the detectors, generators and test batteries themselves.
"""

from callrec.dsp.detection import SAMPLE_RATE, Detection
from callrec.dsp.gen import saturate
from callrec.dsp.health import CallHealth, HealthSettings
from callrec.dsp.linewatch import DeadLineWatch, IdleLineWatch
from callrec.dsp.pipeline import LineDsp

__all__ = ["CallHealth", "DeadLineWatch", "Detection", "HealthSettings", "IdleLineWatch", "LineDsp", "SAMPLE_RATE",
           "saturate"]
