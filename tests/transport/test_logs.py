"""transport.logs: JSON lines carry the current request's fields; text lines its id; both a
process's tag."""

from __future__ import annotations

import io
import logging

import orjson
import pytest

from transport import logs
from transport.logs import REQUEST, JsonFormatter, RequestFilter, configure, tag_process


def _capture(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RequestFilter())
    handler.setFormatter(formatter)
    logger = logging.getLogger("relaynet.test.logs")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, out


def test_json_line_has_the_request_fields_inside_a_request_only() -> None:
    logger, out = _capture(JsonFormatter())
    token = REQUEST.set({"request_id": "00aa", "service": "eth", "method": "eth_call"})
    try:
        logger.warning("slow %s", "supplier")
    finally:
        REQUEST.reset(token)
    logger.info("outside")
    inside, outside = (orjson.loads(x) for x in out.getvalue().splitlines())
    assert inside["msg"] == "slow supplier" and inside["level"] == "warning"
    assert (inside["request_id"], inside["service"], inside["method"]) == (
        "00aa",
        "eth",
        "eth_call",
    )
    assert outside["msg"] == "outside" and "request_id" not in outside


def test_text_format_stays_the_default_and_names_the_request() -> None:
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    try:
        configure("info")
        (handler,) = root.handlers
        assert not isinstance(handler.formatter, JsonFormatter)
        configure("info", "json")
        (handler,) = root.handlers
        assert isinstance(handler.formatter, JsonFormatter)
        logger, out = _capture(logging.Formatter("%(message)s%(request_fields)s"))
        token = REQUEST.set({"request_id": "00bb"})
        try:
            logger.info("hello")
        finally:
            REQUEST.reset(token)
        assert out.getvalue().strip() == "hello [request_id=00bb]"
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def _inside_and_outside(logger: logging.Logger, request_id: str) -> None:
    """One line logged inside a request, one after it."""
    token = REQUEST.set({"request_id": request_id})
    try:
        logger.info("inside")
    finally:
        REQUEST.reset(token)
    logger.info("outside")


def test_a_process_tag_is_on_every_line_in_both_formats(monkeypatch: pytest.MonkeyPatch) -> None:
    """``tag_process(worker=1)`` (a forked gateway worker): a JSON field and a text tag, inside
    a request and outside one."""
    monkeypatch.setattr(logs, "_PROCESS", {})
    monkeypatch.setattr(logs, "_PROCESS_TEXT", [""])
    tag_process(worker=1)
    logger, out = _capture(JsonFormatter())
    _inside_and_outside(logger, "00cc")
    inside, outside = (orjson.loads(x) for x in out.getvalue().splitlines())
    assert (inside["worker"], inside["request_id"], outside["worker"]) == (1, "00cc", 1)
    logger, out = _capture(logging.Formatter("%(message)s%(request_fields)s"))
    _inside_and_outside(logger, "00dd")
    assert out.getvalue().splitlines() == [
        "inside [worker=1 request_id=00dd]",
        "outside [worker=1]",
    ]
