"""Many drivers race for one spot: exactly one wins, every other gets parq.Conflict, and the
store's own data shows one live reservation — from Python threads and from asyncio tasks."""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any, Callable

import parq
from conftest import EPOCH, PG_URL, at, build_city, fresh_schema, psql

RACERS = 64
LIVE = "('held', 'pending_payment', 'confirmed', 'checked_in')"


def live_rows(schema: str, spot: uuid.UUID) -> int:
    return int(psql(f'SELECT count(*) FROM "{schema}".reservations WHERE spot_id = \'{spot}\' AND state IN {LIVE}'))


def test_64_threads_race_for_one_spot(backend: str, make_engine: Callable[..., Any]) -> None:
    clock = parq.ManualClock(EPOCH)
    schema = fresh_schema() if backend == "postgres" else None
    engine = make_engine(backend, clock=clock, pool_size=32, **({"schema": schema} if schema else {}))
    engine.migrate()
    city = build_city(engine, clock, schema)
    spot = city.spots[0].id
    drivers = [uuid.uuid4() for _ in range(RACERS)]
    barrier = threading.Barrier(RACERS)
    results: list[Any] = [None] * RACERS

    def race(i: int) -> None:
        barrier.wait()
        try:
            results[i] = engine.hold(drivers[i], city.lot.id, at(1), at(3), spot=spot)
        except BaseException as e:  # noqa: BLE001 - every outcome is checked below
            results[i] = e

    threads = [threading.Thread(target=race, args=(i,)) for i in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    winners = [r for r in results if isinstance(r, parq.Reservation)]
    losers = [r for r in results if isinstance(r, parq.Conflict)]
    assert len(winners) == 1, results
    assert len(losers) == RACERS - 1, [r for r in results if not isinstance(r, (parq.Reservation, parq.Conflict))]
    assert all(c.reason in ("spot_taken", "claimed") for c in losers)
    # The store's own data: one live reservation on the spot, the winner's.
    held = [r for d in drivers for r in engine.reservations_of(d)]
    assert [r.id for r in held] == [winners[0].id]
    if schema:
        assert live_rows(schema, spot) == 1


def test_64_asyncio_tasks_race_for_one_spot(backend: str, make_engine: Callable[..., Any]) -> None:
    clock = parq.ManualClock(EPOCH)
    schema = fresh_schema() if backend == "postgres" else None
    sync = make_engine(backend, clock=clock, **({"schema": schema} if schema else {}))
    sync.migrate()
    city = build_city(sync, clock, schema)
    spot = city.spots[1].id
    drivers = [uuid.uuid4() for _ in range(RACERS)]

    async def main() -> list[Any]:
        engine = parq.AsyncEngine(PG_URL if schema else "memory:", schema=schema or "parq", clock=clock, pool_size=32)
        if not schema:
            # A memory engine is its own store: set the lot up in this one.
            await engine.put_operator(city.operator)
            await engine.put_lot(city.lot)
            for s in city.spots:
                await engine.put_spot(s)
        tasks = [engine.hold(d, city.lot.id, at(1), at(3), spot=spot) for d in drivers]
        out = await asyncio.gather(*tasks, return_exceptions=True)
        # Read back through the async engine too.
        mine = [await engine.reservations_of(d) for d in drivers]
        return [out, mine]

    results, mine = asyncio.run(main())
    winners = [r for r in results if isinstance(r, parq.Reservation)]
    assert len(winners) == 1, results
    assert sum(isinstance(r, parq.Conflict) for r in results) == RACERS - 1, results
    assert [r.id for rs in mine for r in rs] == [winners[0].id]
    if schema:
        assert live_rows(schema, spot) == 1


def test_threads_on_a_pooled_lot_each_win_their_own_spot(make_engine: Callable[..., Any]) -> None:
    clock = parq.ManualClock(EPOCH)
    schema = fresh_schema()
    engine = make_engine("postgres", clock=clock, schema=schema, pool_size=16)
    engine.migrate()
    city = build_city(engine, clock, schema)
    results: list[Any] = [None] * 32
    barrier = threading.Barrier(32)

    def race(i: int) -> None:
        barrier.wait()
        try:
            results[i] = engine.hold(uuid.uuid4(), city.lot.id, at(1), at(2))
        except parq.ParqError as e:
            results[i] = e

    threads = [threading.Thread(target=race, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if isinstance(r, parq.Reservation)]
    assert len(winners) == 4 and len({w.spot for w in winners}) == 4
    assert all(isinstance(r, parq.Conflict) for r in results if not isinstance(r, parq.Reservation))
    for s in city.spots:
        assert live_rows(schema, s.id) == 1
