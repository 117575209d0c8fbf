"""The loop's lead for the stop-time flatten: open positions times the run's latest round trip."""

from __future__ import annotations

import pytest

from arbitrage.flatten_lead import WINDOW, FlattenLead


def test_nothing_open_or_nothing_measured_leads_by_nothing() -> None:
    assert FlattenLead().lead_sec(8, 4.0) == 0.0
    measured = FlattenLead()
    measured.round_trip(0.2)
    assert measured.lead_sec(0, 4.0) == 0.0


def test_the_lead_is_the_open_positions_times_the_median_round_trip() -> None:
    lead = FlattenLead()
    for seconds in (0.1, 0.3, 0.2):
        lead.round_trip(seconds)
    assert lead.lead_sec(5, 4.0) == pytest.approx(5 * 0.2)


def test_a_slow_spell_earlier_in_the_run_does_not_stretch_the_lead() -> None:
    lead = FlattenLead()
    for _ in range(4):
        lead.round_trip(2.0)
    for _ in range(WINDOW):
        lead.round_trip(0.18)
    assert lead.lead_sec(7, 4.0) == pytest.approx(7 * 0.18)
    lead.round_trip(2.0)
    assert lead.lead_sec(7, 4.0) == pytest.approx(7 * 0.18), "one slow round trip is not the median"


def test_the_lead_never_exceeds_the_stops_venue_budget() -> None:
    lead = FlattenLead()
    lead.round_trip(0.9)
    assert lead.lead_sec(20, 4.0) == 4.0
