"""A journaled record keeps the JSON line the journal wrote, and a batch built from those lines is
exactly the JSON the writer would have encoded afresh: the text PostgreSQL receives does not depend
on which path a record took."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

from arbitrage.journal import JournalRecord, LedgerJournal, encode_batch, encode_records
from evidence import names

ODD_FIELDS: list[tuple[str, dict[str, Any]]] = [
    ("leg", {"run_id": "r", "row": {"qty": 0.1 + 0.2, "pnl": -0.0, "tiny": 2.0**-40, "name": "X\u00e9\"'"}}),
    (
        "event",
        {"run_id": "r", "event_type": "TRADE_OPEN", "payload": {"d": Decimal("1.10"), "nested": [1, None]}},
    ),
    ("event", {"run_id": "r", "event_type": "NOTE", "payload": None, "correlation_id": None}),
    ("leg", {"run_id": "r", "row": {"premium_net_pct": math.nan}}),
]


def journal_records(tmp_path: Path) -> list[JournalRecord]:
    evidence = tmp_path / "run"
    evidence.mkdir()
    journal = LedgerJournal(evidence, tmp_path, "r")
    try:
        return journal.append_many(ODD_FIELDS[:2]) + [
            journal.append(op, fields) for op, fields in ODD_FIELDS[2:]
        ]
    finally:
        journal.close()


def test_a_journaled_record_keeps_the_line_the_journal_wrote(tmp_path: Path) -> None:
    records = journal_records(tmp_path)
    lines = (tmp_path / "run" / names.LEDGER_JOURNAL).read_text(encoding="utf-8").splitlines()
    assert [record.text for record in records] == lines
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3, 4]


def test_a_batch_of_journaled_and_plain_records_is_the_json_of_all_of_them(tmp_path: Path) -> None:
    journaled = journal_records(tmp_path)
    plain = [dict(record) for record in journaled]
    mixed: list[dict[str, Any]] = [journaled[0], plain[1], journaled[2], journaled[3]]
    expected = json.dumps(plain, separators=(",", ":"), default=str)
    assert encode_batch(mixed) == expected
    assert encode_batch(plain) == expected == encode_records(plain)
    assert encode_batch([]) == "[]"
