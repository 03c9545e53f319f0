"""Every exception class is raised by a real failure, carries its code and details, and bad
input is a typed exception with a clear message — never a crash of the interpreter."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import pytest

import parq
from conftest import EPOCH, PG_URL, City, at, build_city, fresh_schema, psql


def confirmed(city: City, driver: uuid.UUID, spot: int, h: float = 4) -> parq.Reservation:
    e: parq.Engine = city.engine
    r = e.hold(driver, city.lot.id, *city.window(h, 2), spot=city.spots[spot].id)
    co = e.checkout(r.id, driver)
    d = e.simulate_payment(co.intent.id, capture=True)
    return e.handle_webhook(d.body, d.signature)


def test_hierarchy() -> None:
    classes = [parq.Conflict, parq.NotFound, parq.InvalidTransition, parq.HoldExpired, parq.StaleFence,
               parq.LimitExceeded, parq.IdempotencyMismatch, parq.PaymentDeclined, parq.Unavailable,
               parq.ScanRefused, parq.InvalidInput, parq.Forbidden, parq.BackendError]
    assert all(issubclass(c, parq.ParqError) for c in classes)
    assert len({c.code for c in classes}) == len(classes)
    assert issubclass(parq.InvalidInput, ValueError)


def test_conflict_and_not_found(city: City) -> None:
    e = city.engine
    e.hold(uuid.uuid4(), city.lot.id, *city.window(1, 1), spot=city.spots[0].id)
    with pytest.raises(parq.Conflict) as c:
        e.hold(uuid.uuid4(), city.lot.id, *city.window(1, 1), spot=city.spots[0].id)
    assert c.value.code == "conflict" and c.value.reason == "spot_taken" and c.value.spot == city.spots[0].id
    assert "taken" in str(c.value)
    with pytest.raises(parq.NotFound) as nf:
        e.get(uuid.uuid4())
    assert nf.value.code == "not_found" and "reservation" in nf.value.what
    with pytest.raises(parq.NotFound):
        e.hold(uuid.uuid4(), uuid.uuid4(), *city.window(1, 1))
    # Someone else's reservation is not found for another driver.
    r = e.hold(uuid.uuid4(), city.lot.id, *city.window(1, 1), spot=city.spots[1].id)
    with pytest.raises(parq.NotFound):
        e.checkout(r.id, uuid.uuid4())


def test_invalid_transition_and_hold_expired(city: City) -> None:
    e = city.engine
    driver = uuid.uuid4()
    r = e.hold(driver, city.lot.id, *city.window(1, 1), spot=city.spots[0].id)
    with pytest.raises(parq.InvalidTransition) as it:
        e.issue_pass(r.id, driver)  # not paid yet
    assert it.value.state is parq.ReservationState.HELD and it.value.reservation == r.id
    assert it.value.action == "issue a pass"
    city.clock.advance(timedelta(minutes=11))
    with pytest.raises(parq.HoldExpired) as he:
        e.checkout(r.id, driver)
    assert he.value.reservation == r.id and he.value.code == "hold_expired"


def test_limit_exceeded(backend: str, make_engine: Callable[..., Any]) -> None:
    clock = parq.ManualClock(EPOCH)
    schema = fresh_schema() if backend == "postgres" else None
    e = make_engine(backend, clock=clock, **({"schema": schema} if schema else {}))
    e.migrate()
    city = build_city(e, clock, schema, max_holds_per_user=1)
    driver = uuid.uuid4()
    e.hold(driver, city.lot.id, *city.window(1, 1))
    with pytest.raises(parq.LimitExceeded) as le:
        e.hold(driver, city.lot.id, *city.window(5, 1))
    assert le.value.limit
    with pytest.raises(parq.LimitExceeded):
        e.hold(uuid.uuid4(), city.lot.id, *city.window(1, 80))  # longer than the 72 h maximum stay


def test_payment_declined_and_unavailable_gateway(city: City) -> None:
    e = city.engine
    driver = uuid.uuid4()
    r = e.hold(driver, city.lot.id, *city.window(1, 1), spot=city.spots[0].id)
    e.fail_next_gateway_call("create", decline="card_declined")
    with pytest.raises(parq.PaymentDeclined) as pd:
        e.checkout(r.id, driver)
    assert "card_declined" in pd.value.reason
    e.fail_next_gateway_call("create")  # a timeout
    with pytest.raises(parq.Unavailable) as un:
        e.checkout(r.id, driver)
    assert un.value.retryable is True
    assert e.checkout(r.id, driver).reservation.state is parq.ReservationState.PENDING_PAYMENT
    with pytest.raises(parq.InvalidInput):
        e.fail_next_gateway_call("teleport")


def test_stale_fence_when_writers_race_on_one_reservation(make_engine: Callable[..., Any]) -> None:
    """Extensions of one hold started together: all read the same fence, the first write wins,
    and the others are refused as stale rather than overwriting it."""
    clock = parq.ManualClock(EPOCH)
    schema = fresh_schema()
    e = make_engine("postgres", clock=clock, schema=schema, pool_size=16)
    e.migrate()
    city = build_city(e, clock, schema)

    async def race(r: parq.Reservation, driver: uuid.UUID) -> list[Any]:
        ae = parq.AsyncEngine(PG_URL, schema=schema, clock=clock, pool_size=16)
        # Every extension is sent before any answer comes back.
        return list(await asyncio.gather(
            *[ae.extend(r.id, driver, at(2, 15 * (i + 1))) for i in range(8)], return_exceptions=True
        ))

    for attempt in range(10):
        driver = uuid.uuid4()
        r = e.hold(driver, city.lot.id, *city.window(1, 1), spot=city.spots[attempt % 4].id)
        out = asyncio.run(race(r, driver))
        # A writer that read after another's extension may find its end no longer later.
        assert all(isinstance(x, (parq.StaleFence, parq.Reservation, parq.InvalidInput)) for x in out), out
        won = [x for x in out if isinstance(x, parq.Reservation)]
        stale = [x for x in out if isinstance(x, parq.StaleFence)]
        assert won, out
        assert e.get(r.id).fence == r.fence + len(won)
        if stale:
            assert all(s.reservation == r.id and s.current > s.presented for s in stale)
            assert stale[0].code == "stale_fence"
            return
        e.cancel(r.id, driver)
    raise AssertionError("ten rounds of racing extensions never met a stale fence")


def test_scan_refused_and_forbidden(city: City) -> None:
    e = city.engine
    driver = uuid.uuid4()
    r = e.hold(driver, city.lot.id, *city.window(1, 1), spot=city.spots[0].id)
    with pytest.raises(parq.ScanRefused) as sr:
        e.check_in(r.id, "north", "reading-1")
    assert sr.value.reason is parq.Refusal.NOT_PAID
    stripe = parq.Engine(gateway="stripe", stripe_secret_key="sk_test_x", webhook_secret="whsec_x")
    with pytest.raises(parq.Forbidden):
        stripe.simulate_payment("pi_1")


def test_unavailable_when_postgres_is_unreachable() -> None:
    e = parq.Engine("postgres://postgres@127.0.0.1:1/test", schema="nowhere")  # connects nothing yet
    with pytest.raises(parq.Unavailable) as un:
        e.migrate()
    assert un.value.retryable is True and "postgres" in str(un.value).lower()


def test_backend_error_when_the_schema_is_gone(make_engine: Callable[..., Any]) -> None:
    schema = fresh_schema()
    e = make_engine("postgres", schema=schema)
    e.migrate()
    psql(f'DROP SCHEMA "{schema}" CASCADE')
    with pytest.raises(parq.ParqError) as err:
        e.lot(uuid.uuid4())
    assert isinstance(err.value, parq.BackendError) and err.value.backend == "postgres"


def test_bad_input_is_typed(city: City) -> None:
    e = city.engine
    naive = datetime(2030, 1, 7, 9)
    with pytest.raises(parq.InvalidInput) as ii:
        e.hold(uuid.uuid4(), city.lot.id, naive, at(2))
    assert ii.value.field == "start" and "naive" in str(ii.value)
    assert isinstance(ii.value, ValueError)
    with pytest.raises(parq.InvalidInput) as ii:
        e.hold(uuid.uuid4(), city.lot.id, at(2), at(1))  # end before start
    assert ii.value.field == "window"
    with pytest.raises(parq.InvalidInput) as ii:
        e.hold(uuid.uuid4(), city.lot.id, at(1, 5), at(2))  # not on the lot's 15 minutes
    with pytest.raises(parq.InvalidInput) as ii:
        e.hold("not-a-uuid", city.lot.id, at(1), at(2))
    assert ii.value.field == "user"
    with pytest.raises(TypeError, match="user must be a uuid.UUID"):
        e.hold(42, city.lot.id, at(1), at(2))
    with pytest.raises(TypeError, match="start must be a timezone-aware datetime"):
        e.hold(uuid.uuid4(), city.lot.id, "tomorrow", at(2))
    with pytest.raises(parq.InvalidInput):
        e.hold(uuid.uuid4(), city.lot.id, at(1), at(2), spot=city.spots[0].id, filter=parq.SpotFilter())
    with pytest.raises(parq.InvalidInput):
        e.hold(uuid.uuid4(), city.lot.id, at(1), at(2), idempotency_key="")
    with pytest.raises(parq.InvalidInput):
        e.search(91.0, 0.0, 100, at(1), at(2))
    with pytest.raises(parq.InvalidInput):
        e.search(35.0, 33.0, float("nan"), at(1), at(2))
    with pytest.raises(parq.InvalidInput):
        e.put_lot(parq.Lot(id=uuid.uuid4(), operator=city.operator.id, name=" ", location=parq.GeoPoint(35, 33),
                           time_zone="Asia/Nicosia", rates=parq.RateTable("EUR", ())))
    with pytest.raises(parq.InvalidInput):
        e.put_lot(parq.Lot(id=uuid.uuid4(), operator=city.operator.id, name="X", location=parq.GeoPoint(35, 33),
                           time_zone="Mars/Olympus", rates=parq.RateTable("EUR", ())))
    with pytest.raises(TypeError):
        e.put_lot("a lot")
    with pytest.raises(parq.InvalidInput):
        e.scan("x" * 5000, city.lot.id, "entry")
    with pytest.raises(parq.InvalidInput):
        e.scan("PASS", city.lot.id, "sideways")
    with pytest.raises(parq.InvalidInput):
        parq.Engine("mysql://x")
    with pytest.raises(parq.InvalidInput):
        parq.Engine(schema="a; DROP TABLE x")
    with pytest.raises(parq.InvalidInput):
        parq.Engine(gateway="paypal")
    with pytest.raises(parq.InvalidInput):
        parq.Engine(gateway="stripe")  # no key
    with pytest.raises(parq.InvalidInput):
        parq.Engine(lock="zookeeper://x")


def test_a_malformed_or_forged_webhook_is_refused(city: City) -> None:
    e = city.engine
    driver = uuid.uuid4()
    r = e.hold(driver, city.lot.id, *city.window(1, 1), spot=city.spots[0].id)
    co = e.checkout(r.id, driver)
    d = e.simulate_payment(co.intent.id)
    for body, sig in [
        (b"{not json", d.signature),
        (d.body.replace(b"authorized", b"succeeded"), d.signature),  # altered
        (d.body, "t=1,v1=00"),
        (d.body, ""),
        (b"\xff" * 10_000, d.signature),
    ]:
        with pytest.raises(parq.InvalidInput):
            e.handle_webhook(body, sig)
    with pytest.raises(TypeError):
        e.handle_webhook(12, d.signature)
    assert e.get(r.id).state is parq.ReservationState.PENDING_PAYMENT
    assert e.handle_webhook(d.body, d.signature).state is parq.ReservationState.CONFIRMED


def test_a_forged_or_altered_pass_is_refused(city: City) -> None:
    e = city.engine
    driver = uuid.uuid4()
    r = confirmed(city, driver, 0)
    p = e.issue_pass(r.id, driver)
    keys = e.pass_keys()
    other = parq.Engine().pass_keys()  # another issuer's key, same key id
    with pytest.raises(parq.InvalidInput):
        parq.verify_pass(p.text, other)
    tampered = p.text[:40] + ("B" if p.text[40] == "A" else "A") + p.text[41:]
    with pytest.raises(parq.InvalidInput):
        parq.verify_pass(tampered, keys)
    for junk in ["", "NOT A PASS", p.text[:-3], "é" * 50, p.text + p.text]:
        with pytest.raises(parq.InvalidInput):
            parq.verify_pass(junk, keys)
    unknown = [parq.PublicKey(id=99, public_key=keys[0].public_key)]
    with pytest.raises(parq.ScanRefused) as sr:
        parq.verify_pass(p.text, unknown)
    assert sr.value.reason is parq.Refusal.UNKNOWN_KEY
    gate = parq.GateVerifier(keys, timedelta(minutes=15))
    assert gate.scan(tampered, city.lot.id, "entry", at(4)).reason is parq.Refusal.INVALID
    with pytest.raises(parq.InvalidInput):
        parq.GateVerifier([{"id": 1, "public_key": "zz"}], timedelta(minutes=15))
    with pytest.raises(parq.InvalidInput):
        parq.GateVerifier(keys, timedelta(minutes=-1))
    with pytest.raises(parq.InvalidInput):
        parq.GateVerifier(keys, timedelta(minutes=1), state="{}garbage")
    with pytest.raises(parq.InvalidInput):
        gate.apply_revocations(parq.RevocationDelta(5, 6, ()))  # skips versions 1..5
    with pytest.raises(parq.InvalidInput):
        parq.render_qr_png(p.text, scale=0)
