"""The verdict payload's JSON Schema shipped in the repo is the one the code produces, and verdicts conform."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema

from inspectd.frame import Defect, Frame, Verdict, verdict_json_schema

SCHEMA_FILE = Path(__file__).parents[1] / "inspectd" / "schema" / "verdict.schema.json"


def test_shipped_schema_matches_the_model():
    shipped = json.loads(SCHEMA_FILE.read_text())
    assert shipped == verdict_json_schema(), (
        "regenerate: inspectd schema > inspectd/schema/verdict.schema.json"
    )


def test_pass_and_error_verdicts_validate():
    schema = verdict_json_schema()
    v = Verdict(
        camera="cam1",
        part_id="A-1",
        seq=3,
        captured_at=datetime(2026, 11, 30, tzinfo=UTC),
        verdict="fail",
        score=0.8,
        threshold=0.6,
        defects=[Defect(bbox=(1, 2, 3, 4), area_px=9, score=0.9)],
    )
    jsonschema.validate(json.loads(v.model_dump_json()), schema)
    e = Verdict.error(Frame(camera="cam1", seq=4, image=None, part_id="A-2"), "overloaded", "queue full")
    payload = json.loads(e.model_dump_json())
    jsonschema.validate(payload, schema)
    assert payload["verdict"] == "error" and payload["reason"] == "overloaded" and payload["part_id"] == "A-2"
