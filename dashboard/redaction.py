"""Keeping API keys out of logs, error messages and pages.

Known keys (every configured connection's) are replaced wherever they appear, and anything shaped like
a key or an Authorization header is masked even when we did not know it was one.
"""

from __future__ import annotations

import logging
import re
import threading

_KEY_SHAPES = re.compile(
    r"(?P<prefix>(?:authorization|api-key|x-api-key)\s*[:=]\s*(?:bearer\s+)?)[^\s,;'\"]+"
    r"|\b(?:sk|rk)-[A-Za-z0-9_\-]{8,}"
    r"|\bBearer\s+[A-Za-z0-9._\-]{8,}",
    re.IGNORECASE,
)
MASK = "[redacted]"
_known: set[str] = set()
_lock = threading.Lock()


def register_secret(secret: str | None) -> None:
    """Remember a key so that it is masked even if it has no recognisable shape."""
    if secret and len(secret) >= 6:
        with _lock:
            _known.add(secret)


def redact(text: str) -> str:
    if not text:
        return text
    for secret in sorted(_known, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return _KEY_SHAPES.sub(lambda m: (m.group("prefix") or "") + MASK, text)


class RedactingFilter(logging.Filter):
    """Attached to every handler: rewrites each record's message with its secrets masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is logged as it is, never dropped
            return True
        cleaned = redact(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


def redact_handlers_of(*loggers: logging.Logger) -> None:
    """Puts the filter on each handler of these loggers that lacks one.

    A filter on a handler sees every record that handler writes, its children's propagated records
    included; a filter on a logger would not. Used where handlers are made outside Django's LOGGING
    (Celery's worker and beat, gunicorn's own logs)."""
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(existing, RedactingFilter) for existing in handler.filters):
                handler.addFilter(RedactingFilter())


def redact_every_handler() -> None:
    """The filter on every handler of every logger that exists so far, the root logger's included."""
    manager = logging.Logger.manager
    loggers = [manager.root, *(x for x in manager.loggerDict.values() if isinstance(x, logging.Logger))]
    redact_handlers_of(*loggers)
