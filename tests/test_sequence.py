"""SequenceFile: per-camera seq numbers increasing across restarts, persisted once per block."""

from __future__ import annotations

import shutil
import threading

from inspectd.sources.sequence import SequenceFile


def test_numbers_increase_across_restarts_and_skip_unused_reservations(tmp_path) -> None:
    path = tmp_path / "seq" / "cam"
    first = SequenceFile(path, block=10)
    assert first.upcoming == 1
    assert [first() for _ in range(3)] == [1, 2, 3]
    assert first.upcoming == 4 and path.read_text().strip() == "11"
    again = SequenceFile(path, block=10)
    assert again.upcoming == 11  # what the next run's first frame gets, known before it starts
    assert again() == 11, "a restart continues after the reserved block, never below it"
    assert [again() for _ in range(10)][-1] == 21 and path.read_text().strip() == "31"


def test_unusable_file_continues_above_any_count(tmp_path) -> None:
    path = tmp_path / "cam"
    path.write_text("garbage")
    assert SequenceFile(path)() > 1_600_000_000_000


def test_a_state_folder_that_cannot_be_written_never_costs_a_number(tmp_path) -> None:
    state = tmp_path / "state"
    seq = SequenceFile(state / "cam", block=3)
    assert [seq() for _ in range(3)] == [1, 2, 3]
    shutil.rmtree(state)
    state.write_text("a file where the state folder was")  # the next block cannot be persisted
    after = [seq() for _ in range(4)]
    assert after[0] > 1_600_000_000_000, (
        "numbering jumps above anything a restart from the stale file reaches"
    )
    assert after == list(range(after[0], after[0] + 4))


def test_threads_never_get_the_same_number(tmp_path) -> None:
    seq = SequenceFile(tmp_path / "cam", block=7)
    got: list[int] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(200):
            n = seq()
            with lock:
                got.append(n)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(1, 801))
