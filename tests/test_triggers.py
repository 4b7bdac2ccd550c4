"""TriggerQueue: FIFO part ids matched to the first frame captured after them, expiry, bounds."""

from __future__ import annotations

import json
import math
import time
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from inspectd.errors import ErrorReason
from inspectd.frame import Frame, utcnow
from inspectd.sources.triggers import (
    MAX_PART_ID_CHARS,
    Trigger,
    TriggerQueue,
    parse_trigger,
    trigger_from_payload,
    unanswered,
)


def frame_at(offset_s: float, **kw) -> Frame:
    return Frame(camera="c", seq=1, image=None, captured_at=utcnow() + timedelta(seconds=offset_s), **kw)


def test_parse_trigger_text_json_and_bounds() -> None:
    assert parse_trigger("A-1042\n") == ("A-1042", None)
    assert parse_trigger('{"part_id": 17, "trigger_id": "t"}') == ("17", "t")
    assert parse_trigger("") == (None, None)
    assert parse_trigger('{"part_id": {"nested": 1}}') == (None, None)
    assert parse_trigger("[" * 100_000)[0] is not None  # plain text, not a crash
    assert len(parse_trigger("x" * 10_000)[0]) == MAX_PART_ID_CHARS


@given(st.text(max_size=2000))
def test_parse_trigger_never_raises(payload: str) -> None:
    part, _trig = parse_trigger(payload)
    assert part is None or 0 < len(part) <= MAX_PART_ID_CHARS


_SENT_AT = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=80),
    st.datetimes(timezones=st.one_of(st.none(), st.timezones())).map(lambda d: d.isoformat()),
    st.lists(st.integers(), max_size=3),
)


@given(part=st.text(max_size=80), sent_at=_SENT_AT, trigger=st.one_of(st.none(), st.text(max_size=20)))
def test_trigger_from_any_json_payload_never_raises_nor_arrives_in_the_future(part, sent_at, trigger) -> None:
    payload = json.dumps({"part_id": part, "trigger_id": trigger, "sent_at": sent_at})
    before_wall, before_mono = utcnow(), time.monotonic()
    got = trigger_from_payload(payload)
    if got is None:
        assert parse_trigger(payload)[0] is None
        return
    assert got.part_id == parse_trigger(payload)[0]
    assert got.arrived_at.tzinfo is not None
    assert got.arrived_at <= utcnow() and math.isfinite(got.arrived_mono)
    assert got.arrived_mono <= time.monotonic()
    if got.arrived_at >= before_wall:  # no usable sent_at: the trigger counts from its arrival
        assert got.arrived_mono >= before_mono


def test_twenty_triggers_then_twenty_frames_match_in_order() -> None:
    q = TriggerQueue(window_s=10.0)
    for i in range(20):
        q.push(Trigger(f"P-{i}"))
    frames = [frame_at(0.01) for _ in range(20)]
    for f in frames:
        assert q.apply(f) == []
    assert [f.part_id for f in frames] == [f"P-{i}" for i in range(20)]
    assert len(q) == 0


def test_frame_captured_before_the_trigger_does_not_take_it() -> None:
    q = TriggerQueue(window_s=10.0)
    early = frame_at(-1.0)
    q.push(Trigger("P-1"))
    q.apply(early)
    assert early.part_id is None and len(q) == 1
    late = frame_at(0.01)
    q.apply(late)
    assert late.part_id == "P-1"


def test_frame_that_names_its_part_keeps_it_and_leaves_the_queue() -> None:
    q = TriggerQueue(window_s=10.0)
    q.push(Trigger("P-1"))
    f = frame_at(0.01, part_id="from-header")
    q.apply(f)
    assert f.part_id == "from-header" and len(q) == 1


def test_expired_triggers_come_back_once_and_frames_skip_them() -> None:
    q = TriggerQueue(window_s=1.0)
    old = Trigger("OLD", arrived_at=utcnow() - timedelta(seconds=5), arrived_mono=0.0)
    q.push(old)
    q.push(Trigger("NEW"))
    f = frame_at(0.01)
    assert q.apply(f) == [old]
    assert f.part_id == "NEW"
    q.push(Trigger("X", arrived_mono=100.0))
    assert q.expire(now_mono=100.5) == []
    assert [t.part_id for t in q.expire(now_mono=101.5)] == ["X"]
    assert q.expire(now_mono=200.0) == []


def test_full_queue_hands_back_the_oldest() -> None:
    q = TriggerQueue(window_s=10.0, limit=2)
    assert q.push(Trigger("A")) is None and q.push(Trigger("B")) is None
    evicted = q.push(Trigger("C"))
    assert evicted is not None and evicted.part_id == "A" and len(q) == 2
    assert [t.part_id for t in q.take_all()] == ["B", "C"] and len(q) == 0


def test_unanswered_frame_carries_the_part_and_reason() -> None:
    t = Trigger("P-9", "T-9")
    f = unanswered("c", 7, t, ErrorReason.NO_FRAME, "no frame")
    assert (f.part_id, f.trigger_id, f.seq, f.image, f.error_reason) == ("P-9", "T-9", 7, None, "no_frame")
    assert f.captured_at == t.arrived_at


def test_sent_at_makes_a_queued_trigger_count_from_when_it_was_sent() -> None:
    old = trigger_from_payload('{"part_id": "Q-1", "sent_at": "2020-01-01T00:00:00Z"}')
    assert old is not None and old.arrived_at.year == 2020
    q = TriggerQueue(window_s=10.0)
    q.push(old)
    assert [t.part_id for t in q.expire()] == ["Q-1"], "queued during an outage long ago: expired at once"
    fresh = trigger_from_payload('{"part_id": "Q-2", "sent_at": 1e300}')
    assert fresh is not None and abs((utcnow() - fresh.arrived_at).total_seconds()) < 5
    assert trigger_from_payload("   ") is None
    assert trigger_from_payload("P-7").part_id == "P-7"
