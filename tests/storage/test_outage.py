"""The writer's outage bookkeeping: when the database is probed again, and when it counts as up."""

from __future__ import annotations

from storage.backoff import Backoff
from storage.outage import Outage


def test_an_outage_probes_ever_later_until_a_batch_is_stored() -> None:
    outage = Outage(Backoff(base_s=1.0, cap_s=8.0))
    assert not outage.down and not outage.probe_due(0.0)

    assert outage.began(100.0) is True  # the first failed write starts it
    assert outage.down and 100.5 <= outage.probe_at <= 101.0
    assert not outage.probe_due(100.4) and outage.seconds_to_probe(100.0) > 0
    assert outage.began(100.0) is False  # already down: no second start

    delays = []
    for _ in range(4):
        now = outage.probe_at
        assert outage.probe_due(now)
        outage.probe_failed(now)
        delays.append(outage.probe_at - now)
    # Half fixed, half random: attempt n waits between c / 2 and c for c = 2**n capped at 8 s
    # (attempts 0 and 1 went to the two failed writes).
    ceilings = [min(2.0**n, 8.0) for n in range(2, 6)]
    assert all(c / 2 <= d <= c for c, d in zip(ceilings, delays, strict=True)), delays

    outage.probe_succeeded()
    assert not outage.down and not outage.probe_due(10**6)
    # A write failing right after the probe goes on from the same attempt count...
    outage.began(0.0)
    assert outage.probe_at >= 4.0
    # ...and a stored batch starts the count again.
    outage.probe_succeeded()
    outage.stored()
    outage.began(0.0)
    assert outage.probe_at <= 1.0
