"""`bench faults`' verdict on a kill, from made-up outcomes: which requests were caught by the
kill, which count as the others, and each target's pass or fail."""

from __future__ import annotations

from bench.faults import Outcome, verdict


def test_requests_in_flight_at_the_kill_are_told_apart_from_the_others() -> None:
    outcomes = [
        Outcome(0.0, 0.5, 200),
        Outcome(0.9, 1.2, 0),  # in flight at 1.0: lost with the killed worker
        Outcome(0.95, 1.1, 200),  # in flight on another worker
        *(Outcome(1.01 + i / 100, 1.05 + i / 100, 200) for i in range(200)),
    ]
    result = verdict(outcomes, kill_at=1.0, deadline_s=5.0, back_s=2.0)
    assert result["in_flight_at_kill"] == 2
    assert result["in_flight_statuses"] == {"200": 1, "no answer": 1}
    assert result["other_statuses"] == {"200": 201}
    assert all(result["pass"].values())


def test_a_hang_past_the_deadline_a_slow_return_and_failing_others_fail() -> None:
    outcomes = [Outcome(0.5, 7.0, 0)] + [Outcome(2.0, 2.1, 0 if i < 3 else 200) for i in range(100)]
    result = verdict(outcomes, kill_at=1.0, deadline_s=5.0, back_s=6.0)
    assert result["pass"] == {
        "no_request_past_deadline_plus_1s": False,
        "others_at_least_99_percent_ok": False,
        "whole_again_within_5s": False,
    }
    assert verdict(outcomes, kill_at=1.0, deadline_s=5.0, back_s=None)["back_s"] is None
