"""A driver's whole journey, as an integrator's back end would run it: hold, checkout, the
provider's webhook, the pass, the gate, cancellation and refund — on memory and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

import parq
from conftest import EPOCH, City, at, psql


def test_hold_checkout_webhook_pass_gate_cancel_refund(city: City) -> None:
    e, lot, spot = city.engine, city.lot, city.spots[0]
    driver = uuid.uuid4()
    start, end = city.window(4, 2)  # 12:00-14:00, four hours ahead: a full refund by policy

    quote = e.quote(lot.id, start, end)
    assert quote.price == parq.Money(400, "EUR")

    held = e.hold(driver, lot.id, start, end, spot=spot.id, idempotency_key="journey-1")
    assert held.state is parq.ReservationState.HELD
    assert (held.spot, held.lot, held.user) == (spot.id, lot.id, driver)
    assert (held.start, held.end) == (start, end)
    assert held.price == quote.price
    assert held.hold_expires_at == EPOCH + timedelta(minutes=10)

    checkout = e.checkout(held.id, driver)
    assert checkout.reservation.state is parq.ReservationState.PENDING_PAYMENT
    assert checkout.intent.amount == quote.price
    assert checkout.intent.status is parq.IntentStatus.REQUIRES_PAYMENT_METHOD
    assert checkout.intent.reservation == held.id

    # The provider calls the back end's webhook view with the raw body and its signature.
    delivery = e.simulate_payment(checkout.intent.id, capture=True)
    assert isinstance(delivery.body, bytes) and delivery.signature.startswith("t=")
    confirmed = e.handle_webhook(delivery.body, delivery.signature)
    assert confirmed.state is parq.ReservationState.CONFIRMED
    assert confirmed.payment is not None and confirmed.payment.captured
    # The same delivery again (a provider's retry) changes nothing.
    again = e.handle_webhook(delivery.body, delivery.signature)
    assert again.id == confirmed.id and again.state is parq.ReservationState.CONFIRMED

    p = e.issue_pass(held.id, driver)
    assert (p.reservation, p.lot, p.spot) == (held.id, lot.id, spot.id)
    assert p.window == parq.Window(start, end)
    assert p.qr_png().startswith(b"\x89PNG") and "<svg" in p.qr_svg()
    assert parq.verify_pass(p.text, e.pass_keys()) == p

    gate = parq.GateVerifier(e.pass_keys(), lot.grace)
    gate.apply_revocations(e.revocations_since(gate.revocation_version))
    decision = gate.scan(p.text, lot.id, parq.Direction.ENTRY, at(3, 50), scan_id="north-1")
    assert decision.allowed and decision.reason is None and bool(decision)
    assert gate.scan(p.text, lot.id, "entry", at(3, 51), scan_id="north-2") == parq.ScanDecision(
        False, parq.Refusal.ALREADY_INSIDE
    )

    cancelled = e.cancel(held.id, driver)
    assert cancelled.reservation.state is parq.ReservationState.CANCELLED
    assert cancelled.refunded == parq.Money(400, "EUR")
    assert e.get(held.id).payment.refunded == 400
    # A retried cancel answers the same and refunds nothing more.
    retried = e.cancel(held.id, driver)
    assert retried.refunded == parq.Money(400, "EUR")
    assert e.get(held.id).payment.refunded == 400

    # The cancellation revokes the pass: the gate learns it at its next sync, and so does the engine.
    gate2 = parq.GateVerifier(e.pass_keys(), lot.grace)
    gate2.apply_revocations(e.revocations_since(0))
    assert gate2.scan(p.text, lot.id, "entry", at(4), scan_id="n3").reason is parq.Refusal.REVOKED
    assert e.scan(p.text, lot.id, "entry", gate="north", scan_id="n4").reason is parq.Refusal.REVOKED

    kinds = [ev.kind for ev in _events(e, lot.id)]
    assert kinds[:3] == [parq.EventKind.HELD, parq.EventKind.PAYMENT_STARTED, parq.EventKind.CONFIRMED]
    assert parq.EventKind.CANCELLED in kinds and parq.EventKind.REFUNDED in kinds

    if city.schema:  # the store's own rows agree
        row = psql(f"SELECT state, payment->>'refunded' FROM \"{city.schema}\".reservations WHERE id = '{held.id}'")
        assert row == "cancelled|400"


def _events(e: parq.Engine, lot: uuid.UUID) -> list[parq.Event]:
    out = []
    it = e.watch(lot, 0, timeout=0.5)
    while True:
        try:
            out.append(next(it))
        except parq.Unavailable:
            return out


def test_gate_check_in_and_out_online_records_one_session(city: City) -> None:
    e, lot = city.engine, city.lot
    driver = uuid.uuid4()
    r = e.hold(driver, lot.id, *city.window(1, 2), spot=city.spots[1].id)
    co = e.checkout(r.id, driver)
    d = e.simulate_payment(co.intent.id)
    assert e.handle_webhook(d.body, d.signature).state is parq.ReservationState.CONFIRMED
    p = e.issue_pass(r.id, driver)

    city.clock.set(at(0, 50))
    assert e.scan(p.text, lot.id, parq.Direction.ENTRY, gate="north", scan_id="r1").allowed
    assert e.get(r.id).state is parq.ReservationState.CHECKED_IN
    assert e.scan(p.text, lot.id, "entry", gate="north", scan_id="r1").reason is parq.Refusal.REPLAYED
    city.clock.set(at(2, 30))
    assert e.check_out(r.id, "south", "r2").state is parq.ReservationState.COMPLETED
    sessions = e.sessions(r.id)
    assert len(sessions) == 1
    s = sessions[0]
    assert (s.entry_gate, s.exit_gate) == ("north", "south")
    assert s.entered_at == at(0, 50) and s.exited_at == at(2, 30)


def test_search_availability_and_extend(city: City) -> None:
    e, lot = city.engine, city.lot
    start, end = city.window(1, 1)
    found = e.search(35.17, 33.36, 5_000, start, end, parq.SpotFilter(ev=True))
    assert [m.lot.id for m in found] == [lot.id]
    assert found[0].free == 2 and 0 < found[0].distance_m < 5_000
    assert e.search(34.70, 33.02, 5_000, start, end) == []  # Limassol: nothing near

    driver = uuid.uuid4()
    r = e.hold(driver, lot.id, start, end, filter=parq.SpotFilter(ev=True))
    assert r.spot in {s.id for s in city.spots[:2]}
    a = e.availability(lot.id, start, end)
    assert a.free == 3 and len(a.spots) == 4
    assert {s.spot.id for s in a.spots if not s.free} == {r.spot}

    longer = e.extend(r.id, driver, at(3))
    assert longer.end == at(3) and longer.price == parq.Money(400, "EUR") and longer.fence > r.fence
    assert e.reservations_of(driver) == [e.get(r.id)]


def test_sweeper_expires_lapsed_holds(city: City) -> None:
    e = city.engine
    driver = uuid.uuid4()
    r = e.hold(driver, city.lot.id, *city.window(1, 1), spot=city.spots[0].id)
    city.clock.advance(timedelta(minutes=11))
    assert e.get(r.id).state is parq.ReservationState.EXPIRED  # readers see it lapse at once
    report = e.sweep()
    assert report.expired == 1 and report.failed == 0
    # The spot is free again for someone else.
    other = e.hold(uuid.uuid4(), city.lot.id, *city.window(1, 1), spot=city.spots[0].id)
    assert other.state is parq.ReservationState.HELD


def test_idempotent_retry_returns_the_same_reservation(city: City) -> None:
    e, lot = city.engine, city.lot
    driver = uuid.uuid4()
    start, end = city.window(2, 1)
    first = e.hold(driver, lot.id, start, end, spot=city.spots[2].id, idempotency_key="req-7")
    retry = e.hold(driver, lot.id, start, end, spot=city.spots[2].id, idempotency_key="req-7")
    assert retry.id == first.id and retry == first
    assert len(e.reservations_of(driver)) == 1
    with pytest.raises(parq.IdempotencyMismatch) as exc:
        e.hold(driver, lot.id, start, end, spot=city.spots[3].id, idempotency_key="req-7")
    assert exc.value.key == "req-7" and exc.value.code == "idempotency_mismatch"
    # Keys are scoped to the driver: another driver's same key is a new request.
    other = e.hold(uuid.uuid4(), lot.id, start, end, spot=city.spots[3].id, idempotency_key="req-7")
    assert other.id != first.id
