"""Anomalies: a baseline per type and per (type, tracking id), spikes and drops flagged as alerts.

No Textual and no aiohttp here: the reader (dashboard, headless, the API) calls
:meth:`detect.Detector.close_bucket` once per closed bucket and :meth:`detect.Detector.alerts`
each refresh; :mod:`.webhook` posts what fires and resolves. README "Anomalies" says what is
detected and how to read an alert.
"""

from tui.anomaly.alerts import (
    DROP,
    FIRING,
    INACTIVE,
    PENDING,
    RESOLVED,
    SPIKE,
    Alert,
    SeriesKey,
)
from tui.anomaly.detect import Detector
from tui.anomaly.settings import (
    AnomalySettings,
    build_anomaly_settings,
    check_anomaly_settings,
)

__all__ = [
    "DROP", "FIRING", "INACTIVE", "PENDING", "RESOLVED", "SPIKE",
    "Alert", "AnomalySettings", "Detector", "SeriesKey", "build_anomaly_settings", "check_anomaly_settings",
]
