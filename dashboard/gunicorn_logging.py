"""gunicorn's own logs, with the dashboard's key masking (`logger_class` in the gunicorn configs)."""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from dashboard.redaction import redact_handlers_of


class RedactingLogger(Logger):
    """gunicorn's error and access loggers do not propagate to the root logger, so Django's LOGGING
    and its redaction filter never see them; yet the access log holds URLs and the error log quotes
    malformed requests and exceptions. setup() runs again on every reload (SIGHUP), hence here."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        redact_handlers_of(self.error_log, self.access_log)
