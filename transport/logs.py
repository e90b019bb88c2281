"""Log set-up shared by both servers: text (default) or one JSON object per line.

A request's fields (``request_id``, ``service``, ``method``, ``supplier``, …) live in a context
variable that a server sets at its outermost boundary; every record logged while the request
is handled carries them, in both formats. Nothing here reads a request: what is put in the
fields is what is logged, so servers put no credentials there. A process can tag every record
it logs too (:func:`tag_process`: a forked gateway worker's index).
"""

from __future__ import annotations

import contextvars
import logging
import secrets
import time
from typing import Any, Literal

import orjson

__all__ = [
    "REQUEST",
    "JsonFormatter",
    "RequestFilter",
    "configure",
    "new_request_id",
    "tag_process",
]

#: the fields of the request being handled (None outside a request)
REQUEST: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "relaynet_request", default=None
)

#: fields every record of this process carries (:func:`tag_process`), and their text form
_PROCESS: dict[str, Any] = {}
_PROCESS_TEXT = [""]

_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(request_fields)s"
_SKIP = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "request_fields",
}


def tag_process(**fields: Any) -> None:
    """Fields every later record of this process carries, in both formats: JSON lines as
    fields, text lines as ``[worker=1 request_id=…]``. Kept across :func:`configure` (a SIGHUP
    reload). A forked gateway worker tags itself ``worker=<index>`` (gateway.workers)."""
    _PROCESS.update(fields)
    _PROCESS_TEXT[0] = " ".join(f"{k}={v}" for k, v in _PROCESS.items())


def new_request_id() -> str:
    """16 hex digits, random (no clock, no counter: nothing to learn from it)."""
    return secrets.token_hex(8)


class RequestFilter(logging.Filter):
    """Adds the current request's fields to each record (``request_fields`` for text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = REQUEST.get()
        tags = _PROCESS_TEXT[0]
        if fields and not hasattr(record, "request_id"):
            for k, v in fields.items():
                setattr(record, k, v)
            request = f"request_id={fields.get('request_id', '-')}"
            record.request_fields = f" [{tags} {request}]" if tags else f" [{request}]"
        elif not hasattr(record, "request_fields"):
            record.request_fields = f" [{tags}]" if tags else ""
        for k, v in _PROCESS.items():
            setattr(record, k, v)
        return True


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", …extra fields}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in record.__dict__.items():
            if k not in _SKIP and not k.startswith("_"):
                doc[k] = v
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


def configure(level: str, fmt: Literal["text", "json"] = "text") -> None:
    """Root logging for a server process: ``fmt`` "text" (default) or "json"."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestFilter())
    if fmt == "json":
        formatter: logging.Formatter = JsonFormatter()
        formatter.converter = time.gmtime
    else:
        formatter = logging.Formatter(_TEXT)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
