"""Durability and tolerance of the evidence writer and reader."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from pathlib import Path

import pytest

from evidence.names import CHAIN_SUMMARY, HEARTBEAT, KPI, MANIFEST
from evidence.reader import CorruptEvidenceError, load_evidence, read_json, read_jsonl
from evidence.writer import FileDigest, JsonlAppender, atomic_write_bytes, atomic_write_json, file_digest
from tests.evidence_factory import make_evidence_dir


class FsyncSpy:
    """Records what kind of file each fsync hit, then really fsyncs."""

    def __init__(self) -> None:
        self.kinds: list[str] = []
        self._real = os.fsync

    def __call__(self, fd: int) -> None:
        self.kinds.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        self._real(fd)


@pytest.fixture
def fsync_spy(monkeypatch: pytest.MonkeyPatch) -> FsyncSpy:
    spy = FsyncSpy()
    monkeypatch.setattr(os, "fsync", spy)
    return spy


def test_atomic_write_json_exact_bytes_and_round_trip(tmp_path: Path) -> None:
    target = tmp_path / "doc.json"
    digest = atomic_write_json(target, {"b": [1, 2], "a": {"z": None, "y": "x"}})
    expected = '{\n  "a": {\n    "y": "x",\n    "z": null\n  },\n  "b": [\n    1,\n    2\n  ]\n}\n'
    assert target.read_text(encoding="utf-8") == expected
    assert read_json(target) == {"a": {"y": "x", "z": None}, "b": [1, 2]}
    assert digest == FileDigest(hashlib.sha256(expected.encode()).hexdigest(), len(expected))
    assert os.listdir(tmp_path) == ["doc.json"]


def test_atomic_write_replaces_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "doc.json"
    for value in range(5):
        atomic_write_json(target, {"v": value})
    assert read_json(target) == {"v": 4}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doc.json"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_atomic_write_fsyncs_file_then_directory(tmp_path: Path, fsync_spy: FsyncSpy) -> None:
    atomic_write_bytes(tmp_path / "x.bin", b"payload")
    assert fsync_spy.kinds == ["file", "dir"]


def test_failed_write_keeps_old_content_and_cleans_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "doc.json"
    atomic_write_json(target, {"v": 1})

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "I/O error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="I/O error"):
        atomic_write_json(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["doc.json"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_refused_with_file_name(tmp_path: Path, bad: float) -> None:
    target = tmp_path / "kpi.json"
    with pytest.raises(ValueError, match=r"kpi\.json.*NaN/Infinity"):
        atomic_write_json(target, {"net_pnl_krw": bad})
    assert list(tmp_path.iterdir()) == []


def test_digest_matches_hashlib_over_bytes(tmp_path: Path) -> None:
    data = b"\x00\x01evidence\n" * 100_000
    returned = atomic_write_bytes(tmp_path / "blob", data)
    expected = FileDigest(sha256=hashlib.sha256(data).hexdigest(), bytes=1_100_000)
    assert returned == expected
    assert file_digest(tmp_path / "blob") == expected
    assert expected.to_json() == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": 1_100_000}


def test_appender_writes_compact_lines_and_fsyncs_each(tmp_path: Path, fsync_spy: FsyncSpy) -> None:
    path = tmp_path / HEARTBEAT
    with JsonlAppender(path) as appender:
        appender.append({"seq": 0, "event": "start"})
        appender.append({"seq": 1, "kpi": {"b": 2, "a": 1}})
        appender.append({"seq": 2, "event": "stop"})
        assert appender.lines_written == 3
    assert fsync_spy.kinds == ["dir", "file", "file", "file"]
    assert path.read_bytes() == (
        b'{"event":"start","seq":0}\n{"kpi":{"a":1,"b":2},"seq":1}\n{"event":"stop","seq":2}\n'
    )
    content = read_jsonl(path)
    assert content.records == [
        {"seq": 0, "event": "start"},
        {"seq": 1, "kpi": {"a": 1, "b": 2}},
        {"seq": 2, "event": "stop"},
    ]
    assert content.torn_tail is False


def test_appender_close_is_idempotent_and_append_after_close_fails(tmp_path: Path) -> None:
    appender = JsonlAppender(tmp_path / HEARTBEAT)
    appender.append({"seq": 0})
    appender.close()
    appender.close()
    assert appender.closed is True
    with pytest.raises(ValueError, match="append after close"):
        appender.append({"seq": 1})
    assert read_jsonl(tmp_path / HEARTBEAT).records == [{"seq": 0}]


def test_appender_refuses_nan_without_writing(tmp_path: Path) -> None:
    appender = JsonlAppender(tmp_path / HEARTBEAT)
    with pytest.raises(ValueError, match=r"heartbeat\.jsonl.*NaN"):
        appender.append({"rss_mb": float("nan")})
    appender.close()
    assert (tmp_path / HEARTBEAT).read_bytes() == b""


def test_appender_is_thread_safe(tmp_path: Path) -> None:
    path = tmp_path / HEARTBEAT
    with JsonlAppender(path) as appender:

        def worker(thread: int) -> None:
            for i in range(50):
                appender.append({"thread": thread, "i": i, "pad": "x" * 200})

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    records = read_jsonl(path).records
    assert len(records) == 400
    assert sorted((r["thread"], r["i"]) for r in records) == [(t, i) for t in range(8) for i in range(50)]


def test_reopening_drops_torn_tail_before_appending(tmp_path: Path) -> None:
    path = tmp_path / HEARTBEAT
    path.write_bytes(b'{"seq":0}\n{"seq":1,"ev')
    with JsonlAppender(path) as appender:
        assert appender.repaired_bytes == len(b'{"seq":1,"ev')
        appender.append({"seq": 2})
    assert path.read_bytes() == b'{"seq":0}\n{"seq":2}\n'


def test_reopening_completes_parseable_unterminated_tail(tmp_path: Path) -> None:
    path = tmp_path / HEARTBEAT
    path.write_bytes(b'{"seq":0}\n{"seq":1}')
    with JsonlAppender(path) as appender:
        assert appender.repaired_bytes == 0
        appender.append({"seq": 2})
    assert read_jsonl(path).records == [{"seq": 0}, {"seq": 1}, {"seq": 2}]


def test_torn_tail_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / HEARTBEAT
    path.write_bytes(b'{"seq":0}\n{"seq":1}\n{"seq":2,"kp')
    content = read_jsonl(path)
    assert content.records == [{"seq": 0}, {"seq": 1}]
    assert content.torn_tail is True


def test_unterminated_but_complete_tail_is_kept(tmp_path: Path) -> None:
    path = tmp_path / HEARTBEAT
    path.write_bytes(b'{"seq":0}\n{"seq":1}')
    content = read_jsonl(path)
    assert content.records == [{"seq": 0}, {"seq": 1}]
    assert content.torn_tail is False


def test_malformed_terminated_line_is_corruption_with_line_number(tmp_path: Path) -> None:
    path = tmp_path / HEARTBEAT
    path.write_bytes(b'{"seq":0}\n{"seq":1,"kp\n{"seq":2}\n')
    with pytest.raises(CorruptEvidenceError, match=r"heartbeat\.jsonl: line 2: malformed JSON") as info:
        read_jsonl(path)
    assert info.value.line == 2
    assert info.value.path == path


@pytest.mark.parametrize(
    ("data", "line", "reason"),
    [
        (b'{"seq":0}\n\n{"seq":2}\n', 2, "blank line"),
        (b'{"seq":0}\n{"seq":1}\n\n', 3, "blank line"),
        (b'{"seq":0}\n[1, 2]\n', 2, "expected a JSON object, got list"),
        (b'{"seq":0}\n{"x":NaN}\n', 2, "non-standard JSON constant NaN"),
        (b'{"seq":0}\n"text"', 2, "expected a JSON object, got str"),
    ],
)
def test_other_jsonl_corruption(tmp_path: Path, data: bytes, line: int, reason: str) -> None:
    path = tmp_path / HEARTBEAT
    path.write_bytes(data)
    with pytest.raises(CorruptEvidenceError) as info:
        read_jsonl(path)
    assert info.value.line == line
    assert reason in str(info.value)


def test_empty_jsonl_has_no_records(tmp_path: Path) -> None:
    (tmp_path / HEARTBEAT).write_bytes(b"")
    content = read_jsonl(tmp_path / HEARTBEAT)
    assert (content.records, content.torn_tail) == ([], False)


def test_read_json_reports_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / KPI
    path.write_text('{\n  "a": 1,\n  "b": \n}\n')
    with pytest.raises(CorruptEvidenceError, match=r"kpi\.json: line 4: invalid JSON") as info:
        read_json(path)
    assert info.value.line == 4


@pytest.mark.parametrize(
    ("text", "reason"),
    [("[1, 2]\n", "expected a JSON object, got list"), ("", "empty file"), ('{"x": Infinity}', "Infinity")],
)
def test_read_json_rejects_non_objects_and_empty(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / KPI
    path.write_text(text)
    with pytest.raises(CorruptEvidenceError, match=reason):
        read_json(path)


def test_read_json_missing_file_passes_through(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_json(tmp_path / MANIFEST)


def test_load_evidence_of_valid_directory(tmp_path: Path) -> None:
    bundle = load_evidence(make_evidence_dir(tmp_path / "ev"))
    assert bundle.problems == []
    assert bundle.ok is True
    assert bundle.manifest is not None and bundle.manifest["run_id"] == "smoke_20250101T000000Z_a1b2c3"
    assert bundle.kpi is not None and bundle.kpi["closed_trades"] == 3
    assert bundle.chain_summary is not None and bundle.chain_summary["exit_code"] == 0
    assert [h["event"] for h in bundle.heartbeats] == ["start", *["beat"] * 6, "stop"]
    assert bundle.heartbeat_torn_tail is False


def test_load_evidence_records_problems_instead_of_raising(tmp_path: Path) -> None:
    evidence_dir = make_evidence_dir(tmp_path / "ev")
    (evidence_dir / KPI).unlink()
    (evidence_dir / CHAIN_SUMMARY).write_text("{not json")
    with (evidence_dir / HEARTBEAT).open("ab") as fh:
        fh.write(b'{"seq": 99, "event": "be')
    bundle = load_evidence(evidence_dir)
    assert bundle.kpi is None
    assert bundle.chain_summary is None
    assert bundle.manifest is not None
    assert len(bundle.heartbeats) == 8
    assert bundle.heartbeat_torn_tail is True
    assert bundle.problems == [
        "chain_summary.json: line 1: corrupt: invalid JSON: Expecting property name "
        "enclosed in double quotes (column 2)",
        "kpi.json: missing",
    ]


def test_load_evidence_of_missing_directory(tmp_path: Path) -> None:
    bundle = load_evidence(tmp_path / "nope")
    assert bundle.ok is False
    assert bundle.problems == [f"{tmp_path / 'nope'}: evidence directory missing"]
    assert (bundle.manifest, bundle.heartbeats) == (None, [])


def test_load_evidence_reports_corrupt_heartbeat_line(tmp_path: Path) -> None:
    evidence_dir = make_evidence_dir(tmp_path / "ev")
    lines = (evidence_dir / HEARTBEAT).read_bytes().split(b"\n")
    lines[2] = b"garbage"
    (evidence_dir / HEARTBEAT).write_bytes(b"\n".join(lines))
    bundle = load_evidence(evidence_dir)
    assert bundle.heartbeats == []
    assert len(bundle.problems) == 1
    assert bundle.problems[0].startswith("heartbeat.jsonl: line 3: corrupt: malformed JSON line")
