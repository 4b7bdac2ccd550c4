"""Logging: JSON off a terminal, and a closed stderr never breaks the caller."""

from __future__ import annotations

import io
import json
import sys

from inspectd.logs import configure_logging, get_logger


def test_json_lines_with_component_and_context():
    buf = io.StringIO()
    configure_logging("info", "json", stream=buf)
    get_logger("unit", camera="cam1").info("verdict", seq=3)
    rec = json.loads(buf.getvalue().strip())
    assert rec["event"] == "verdict" and rec["component"] == "unit" and rec["camera"] == "cam1"
    assert rec["seq"] == 3 and rec["level"] == "info" and "timestamp" in rec


def test_level_filters_debug():
    buf = io.StringIO()
    configure_logging("info", "json", stream=buf)
    get_logger("unit").debug("noise")
    assert buf.getvalue() == ""


def test_a_closed_stderr_does_not_raise_and_the_line_reaches_the_process_stderr(monkeypatch, capfd):
    configure_logging("info", "json")
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "stderr", closed)
    get_logger("unit").error("still_running")
    assert "still_running" in capfd.readouterr().err
