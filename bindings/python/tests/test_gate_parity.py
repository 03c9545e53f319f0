"""Offline gates decide exactly as the engine does online, on the steps of parq-core's
gate-parity fixture (the same file the Rust test and the Kotlin tests replay)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path

import parq
from conftest import City
from test_errors import confirmed

FIXTURE = Path(__file__).resolve().parents[3] / "parq-core" / "tests" / "fixtures" / "gate_parity.json"


def test_offline_and_online_decide_every_step_alike(city: City) -> None:
    spec = json.loads(FIXTURE.read_text())
    e, lot = city.engine, city.lot
    assert lot.grace == timedelta(minutes=spec["grace_min"])
    h = spec["window"]["start_after_min"] / 60
    driver = uuid.uuid4()
    mine = confirmed(city, driver, 0, h)
    assert mine.end - mine.start == timedelta(hours=2) == timedelta(minutes=spec["window"]["length_min"])
    cancelled = confirmed(city, driver, 1, h)
    p = e.issue_pass(mine.id, driver)
    p_cancelled = e.issue_pass(cancelled.id, driver)
    # Signed by a stranger's key that has the same key id as the engine's.
    other_issuer = parq.Engine(clock=city.clock)
    forged_text = _forge(other_issuer, mine)
    tampered = p.text[:40] + ("B" if p.text[40] == "A" else "A") + p.text[41:]
    e.cancel(cancelled.id, driver)
    gate = parq.GateVerifier(e.pass_keys(), lot.grace)
    gate.apply_revocations(e.revocations_since(gate.revocation_version))

    texts = {"mine": p.text, "forged": forged_text, "tampered": tampered, "garbage": "NOT A PASS",
             "cancelled": p_cancelled.text}
    other_lot = uuid.uuid4()
    for i, step in enumerate(spec["steps"]):
        city.clock.advance(timedelta(minutes=step["advance_min"]))
        now = city.clock.now()
        gate_lot = lot.id if step["lot"] == "own" else other_lot
        reading = f"reading-{step['reading']}"
        offline = gate.scan(texts[step["pass"]], gate_lot, step["direction"], now, scan_id=reading)
        online = e.scan(texts[step["pass"]], gate_lot, step["direction"], gate="north", scan_id=reading)
        expected = parq.ScanDecision(True) if step["expect"] == "allow" else parq.ScanDecision(
            False, parq.Refusal(step["expect"])
        )
        assert offline == expected, f"step {i}: offline"
        assert online == expected, f"step {i}: online"
    assert e.get(mine.id).state is parq.ReservationState.COMPLETED
    assert len(e.sessions(mine.id)) == 1


def _forge(issuer: parq.Engine, r: parq.Reservation) -> str:
    """A pass for the same reservation signed by another issuer's key (same key id)."""
    issuer.put_operator(parq.Operator(r.operator, "Forger"))
    lot, spots = _copy_lot(r)
    issuer.put_lot(lot)
    for s in spots:
        issuer.put_spot(s)
    driver = uuid.uuid4()
    held = issuer.hold(driver, r.lot, r.start, r.end, spot=r.spot)
    co = issuer.checkout(held.id, driver)
    d = issuer.simulate_payment(co.intent.id, capture=True)
    issuer.handle_webhook(d.body, d.signature)
    return issuer.issue_pass(held.id, driver).text


def _copy_lot(r: parq.Reservation) -> tuple[parq.Lot, list[parq.Spot]]:
    from conftest import sample_lot

    lot, spots = sample_lot(r.operator)
    lot = parq.Lot(**{**{f: getattr(lot, f) for f in lot.__dataclass_fields__}, "id": r.lot})
    return lot, [parq.Spot(r.spot, r.lot, "A-1")]
