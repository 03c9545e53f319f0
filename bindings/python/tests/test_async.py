"""parq.AsyncEngine on asyncio: the journey, live events as an async iterator resumed from a
sequence number, and errors raised from awaits."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Callable

import pytest

import parq
from conftest import EPOCH, PG_URL, at, fresh_schema, psql, sample_lot


async def setup(engine: parq.AsyncEngine) -> tuple[parq.Lot, list[parq.Spot]]:
    op = parq.Operator(uuid.uuid4(), "Limassol Marina")
    await engine.put_operator(op)
    lot, spots = sample_lot(op.id)
    await engine.put_lot(lot)
    for s in spots:
        await engine.put_spot(s)
    return lot, spots


@pytest.mark.parametrize("backend", ["memory", "postgres"])
async def test_async_journey_and_live_events(backend: str) -> None:
    schema = fresh_schema()
    clock = parq.ManualClock(EPOCH)
    e = parq.AsyncEngine(PG_URL if backend == "postgres" else "memory:", schema=schema, clock=clock)
    try:
        await e.migrate()
        lot, spots = await setup(e)
        assert (await e.lot(lot.id)) == lot
        assert [s.id for s in await e.spots(lot.id)] == [s.id for s in spots]
        driver = uuid.uuid4()
        watch = e.watch(lot.id, 0)
        r = await e.hold(driver, lot.id, at(4), at(6), spot=spots[0].id, idempotency_key="a-1")
        assert r.state is parq.ReservationState.HELD
        assert (await e.hold(driver, lot.id, at(4), at(6), spot=spots[0].id, idempotency_key="a-1")).id == r.id
        co = await e.checkout(r.id, driver)
        d = e.simulate_payment(co.intent.id)
        confirmed = await e.handle_webhook(d.body, d.signature)
        assert confirmed.state is parq.ReservationState.CONFIRMED
        p = await e.issue_pass(r.id, driver)
        assert parq.verify_pass(p.text, e.pass_keys()).reservation == r.id
        c = await e.cancel(r.id, driver)
        assert c.refunded == parq.Money(400, "EUR")
        assert (await e.sweep()).failed == 0

        seen = []
        async for ev in watch:
            seen.append(ev)
            if ev.kind is parq.EventKind.CANCELLED:
                break
        assert [ev.seq for ev in seen] == list(range(1, len(seen) + 1))
        assert seen[0].kind is parq.EventKind.HELD and seen[0].reservation == r.id
        # Resuming from a sequence number gives exactly what came after it.
        resumed = []
        async for ev in e.watch(lot.id, 2):
            resumed.append(ev)
            if ev.seq == seen[-1].seq:
                break
        assert [ev.seq for ev in resumed] == [ev.seq for ev in seen[2:]]

        with pytest.raises(parq.Conflict):
            await e.hold(uuid.uuid4(), lot.id, at(8), at(9), spot=spots[1].id) and await e.hold(
                uuid.uuid4(), lot.id, at(8), at(9), spot=spots[1].id
            )
        with pytest.raises(parq.NotFound):
            await e.get(uuid.uuid4())
        with pytest.raises(parq.InvalidInput):
            await e.hold(driver, lot.id, at(2), at(1))
    finally:
        if backend == "postgres":
            psql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def test_many_awaits_at_once_share_the_runtime() -> None:
    e = parq.AsyncEngine(clock=parq.ManualClock(EPOCH))
    lot, spots = await setup(e)
    drivers = [uuid.uuid4() for _ in range(200)]
    out = await asyncio.gather(
        *[e.hold(d, lot.id, at(1 + i // 4), at(2 + i // 4), spot=spots[i % 4].id) for i, d in enumerate(drivers)]
    )
    assert len({r.id for r in out}) == 200


def test_an_awaitable_needs_a_running_loop() -> None:
    e = parq.AsyncEngine()
    with pytest.raises(RuntimeError):
        e.get(uuid.uuid4())


async def test_memory_work_completes_without_a_thread_hop() -> None:
    e = parq.AsyncEngine(clock=parq.ManualClock(EPOCH))
    lot, spots = await setup(e)
    fut = e.hold(uuid.uuid4(), lot.id, at(1), at(2), spot=spots[0].id)
    assert fut.done()  # the memory store answered on the first poll
    assert (await fut).state is parq.ReservationState.HELD


async def test_a_cancelled_await_leaves_the_loop_healthy() -> None:
    schema = fresh_schema()
    e = parq.AsyncEngine(PG_URL, schema=schema, clock=parq.ManualClock(EPOCH))
    try:
        await e.migrate()
        lot, spots = await setup(e)
        fut = e.hold(uuid.uuid4(), lot.id, at(1), at(2), spot=spots[0].id)
        assert not fut.done()  # PostgreSQL answers later, on the runtime
        fut.cancel()
        with pytest.raises(asyncio.CancelledError):
            await fut
        await asyncio.sleep(0.2)  # the hold's answer arrives and is dropped
        assert (await e.quote(lot.id, at(1), at(2))).price == parq.Money(200, "EUR")
        # Cancelling the await does not cancel the work: the hold was made.
        assert (await e.availability(lot.id, at(1), at(2))).free == 3
    finally:
        psql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_postgres_with_a_redis_admission_lock(make_engine: Callable[..., Any]) -> None:
    from conftest import REDIS_URL, build_city

    schema = fresh_schema()
    clock = parq.ManualClock(EPOCH)
    e = make_engine("postgres", schema=schema, clock=clock, lock=REDIS_URL, redis_prefix=f"t-{schema}")
    e.migrate()
    city = build_city(e, clock, schema)
    r = e.hold(uuid.uuid4(), city.lot.id, at(1), at(2), spot=city.spots[0].id)
    with pytest.raises(parq.Conflict):
        e.hold(uuid.uuid4(), city.lot.id, at(1), at(2), spot=city.spots[0].id)
    assert "redis" in repr(e)
    assert e.get(r.id).state is parq.ReservationState.HELD
