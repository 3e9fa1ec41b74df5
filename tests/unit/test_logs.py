"""JSON log lines carry their context and never a secret."""

from __future__ import annotations

import io
import json
import logging

from vllmbench import logs


def test_lines_are_json_with_context_and_secrets_redacted():
    stream = io.StringIO()
    logs.configure("INFO", stream=stream)
    logs.redact("hunter2-secret")
    log = logging.getLogger("vllmbench.test")
    with logs.bind(event_id="evt-1", run_id="run-9", project="demo"):
        logs.info(log, "connecting with hunter2-secret", url="https://x:hunter2-secret@github.com")
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["event_id"] == "evt-1" and line["run_id"] == "run-9" and line["project"] == "demo"
    assert "hunter2-secret" not in stream.getvalue()
    assert line["msg"] == "connecting with ***"


def test_context_does_not_leak_out_of_the_block():
    with logs.bind(run_id="inside"):
        pass
    assert "run_id" not in logs.current_context()
