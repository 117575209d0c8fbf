"""The loop's lead for the stop-time flatten: open positions times the run's own round trip."""

from __future__ import annotations

import pytest

from arbitrage.flatten_lead import FlattenLead


def test_nothing_open_or_nothing_measured_leads_by_nothing() -> None:
    assert FlattenLead().lead_sec(8, 4.0) == 0.0
    measured = FlattenLead()
    measured.entered(0.2)
    assert measured.lead_sec(0, 4.0) == 0.0


def test_entries_stand_in_for_exits_until_there_is_one() -> None:
    lead = FlattenLead()
    lead.entered(0.1)
    lead.entered(0.3)
    assert lead.lead_sec(5, 4.0) == pytest.approx(5 * 0.2)
    lead.exited(0.5)
    assert lead.lead_sec(5, 4.0) == pytest.approx(5 * 0.5), "the exits' own mean once one is known"


def test_the_lead_never_exceeds_the_stops_venue_budget() -> None:
    lead = FlattenLead()
    lead.exited(0.9)
    assert lead.lead_sec(20, 4.0) == 4.0
