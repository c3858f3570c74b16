"""The rows on disk (``delivery/segments.py``): torn lines, rolling, deleting."""

from __future__ import annotations

from crucible_train.adapters.delivery import segments
from crucible_train.errors import HttpConnectionError

from delivery_fakes import MemoryTransport, http_error, submit_rows


def test_a_torn_last_line_is_cut_and_numbering_continues(make_sender, tmp_path):
    spool = tmp_path / "spool" / "memory"
    down = MemoryTransport()
    down.plan["start"] = [http_error(HttpConnectionError, None, "refused")] * 1000
    first = make_sender(down, spool)
    submit_rows(first, 3)
    first.close(0, 0.2)
    segment = next(spool.glob("rows-*.jsonl"))
    with open(segment, "ab") as handle:
        handle.write(b'{"seq":3,"kind":"metrics","ti')  # a crash mid-write
    up = MemoryTransport()
    second = make_sender(up, spool)
    submit_rows(second, 1, start=3)
    assert second.close(0, 5) == 0
    assert [up.delivered[s].payload["i"] for s in range(4)] == [0, 1, 2, 3]


def test_segments_roll_and_acknowledged_ones_are_deleted(make_sender, monkeypatch):
    monkeypatch.setattr(segments, "SEGMENT_ROWS", 10)
    transport = MemoryTransport()
    sender = make_sender(transport, max_rows_per_request=7)
    submit_rows(sender, 35)
    assert sender.close(0, 5) == 0
    assert sorted(transport.delivered) == list(range(35))
    assert [p.name for p in sender.spool_dir.glob("rows-*.jsonl")] == ["rows-000000000030.jsonl"]
