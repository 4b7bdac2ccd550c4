"""The on-disk spool: ordered, persistent across reopen, acked messages gone, full drops the oldest."""

from __future__ import annotations

import os

import pytest

from inspectd.errors import ConfigError
from inspectd.sinks.spool import Spool


def test_append_peek_ack_in_order(tmp_path) -> None:
    spool = Spool(tmp_path, 10)
    ids = [spool.append(f"t/{i}", f"p{i}".encode()) for i in range(3)]
    assert ids == [1, 2, 3] and len(spool) == 3
    items = spool.peek(2)
    assert [(i.id, i.topic, i.payload) for i in items] == [(1, "t/0", b"p0"), (2, "t/1", b"p1")]
    assert [i.id for i in spool.peek(5, after=1)] == [2, 3]
    spool.ack(2)
    spool.ack(2)
    assert [i.id for i in spool.peek(5)] == [1, 3] and len(spool) == 2
    assert not spool.has_after(3) and spool.has_after(2)


def test_payload_may_contain_newlines_and_binary(tmp_path) -> None:
    spool = Spool(tmp_path, 10)
    payload = b'{"a": 1}\n\x00\xff\nend'
    spool.append("x/verdict", payload)
    assert spool.peek(1)[0].payload == payload


def test_survives_reopen_and_continues_ids(tmp_path) -> None:
    spool = Spool(tmp_path, 10)
    for i in range(4):
        spool.append("t", str(i).encode())
    spool.ack(1)
    spool.close()
    (tmp_path / ".000000000099.msg.4242.tmp").write_bytes(b"half written")
    again = Spool(tmp_path, 10)
    assert [(i.id, i.payload) for i in again.peek(10)] == [(2, b"1"), (3, b"2"), (4, b"3")]
    assert again.append("t", b"4") == 5
    assert not (tmp_path / ".000000000099.msg.4242.tmp").exists()
    assert sorted(os.listdir(tmp_path)) == [f"{i:020d}.msg" for i in (2, 3, 4, 5)]


def test_full_spool_drops_oldest_and_counts(tmp_path) -> None:
    spool = Spool(tmp_path, 3)
    for i in range(5):
        spool.append("t", str(i).encode())
    assert spool.dropped == 2 and len(spool) == 3
    assert [i.payload for i in spool.peek(10)] == [b"2", b"3", b"4"]
    spool.ack(1)
    assert len(spool) == 3


def test_corrupt_file_is_removed_with_an_error(tmp_path) -> None:
    spool = Spool(tmp_path, 10)
    spool.append("t", b"a")
    spool.append("t", b"b")
    (tmp_path / f"{1:020d}.msg").write_bytes(b"no newline here")
    assert [i.payload for i in spool.peek(10)] == [b"b"]
    assert len(spool) == 1


def test_unusable_directory_is_a_config_error(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match=r"mqtt\.spool_dir"):
        Spool(blocker / "spool", 10)
