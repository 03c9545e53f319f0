"""Holds per second from Python on the in-memory engine, in the shape of the Rust benchmark
`memory_holds/one_thread` (benches/benches/memory_holds.rs): a lot of 1,000 spots; hold `i`
takes spot `i % 1000` for the `i / 1000 + 1`-th hour; 1,000 drivers in turn; the store already
holds 100,000 reservations. Arguments are built before the clock starts, so the figure is the
engine plus the binding's call.

    python bindings/python/benches/holds.py [holds]
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

import parq

EPOCH = datetime(2030, 1, 7, 8, tzinfo=timezone.utc)
SPOTS = 1_000
PREFILL = 100_000



def setup(engine: parq.Engine) -> tuple[parq.Lot, list[uuid.UUID], list[uuid.UUID]]:
    op = parq.Operator(uuid.uuid4(), "Bench")
    engine.put_operator(op)
    lot = parq.Lot(
        id=uuid.uuid4(), operator=op.id, name="Bench", location=parq.GeoPoint(35.17, 33.36),
        time_zone="Asia/Nicosia", max_stay=timedelta(hours=24),
        rates=parq.RateTable("EUR", (parq.IncrementingRate(every_minutes=60, amount=200),), daily_cap=1500),
    )
    engine.put_lot(lot)
    spots = []
    for i in range(SPOTS):
        s = parq.Spot(uuid.uuid4(), lot.id, f"B-{i:05}")
        engine.put_spot(s)
        spots.append(s.id)
    users = [uuid.uuid4() for _ in range(1000)]
    return lot, spots, users


def args(lot: parq.Lot, spots: list[uuid.UUID], users: list[uuid.UUID], first: int, n: int) -> list[tuple]:
    hours = [EPOCH + timedelta(hours=h) for h in range((first + n) // SPOTS + 3)]
    return [
        (users[i % 1000], lot.id, hours[i // SPOTS + 1], hours[i // SPOTS + 2], spots[i % SPOTS])
        for i in range(first, first + n)
    ]


def sync_rate(n: int) -> float:
    engine = parq.Engine(clock=parq.ManualClock(EPOCH))
    lot, spots, users = setup(engine)
    for u, l, s, e, sp in args(lot, spots, users, 0, PREFILL):
        engine.hold(u, l, s, e, spot=sp)
    work = args(lot, spots, users, PREFILL, n)
    hold = engine.hold
    t = time.perf_counter()
    for u, l, s, e, sp in work:
        hold(u, l, s, e, spot=sp)
    return n / (time.perf_counter() - t)


def async_rate(n: int, batch: int = 1_000) -> float:
    async def main() -> float:
        engine = parq.AsyncEngine(clock=parq.ManualClock(EPOCH))
        sync = parq.Engine()  # only to build the catalog objects
        del sync
        op = parq.Operator(uuid.uuid4(), "Bench")
        await engine.put_operator(op)
        lot = parq.Lot(
            id=uuid.uuid4(), operator=op.id, name="Bench", location=parq.GeoPoint(35.17, 33.36),
            time_zone="Asia/Nicosia", max_stay=timedelta(hours=24),
            rates=parq.RateTable("EUR", (parq.IncrementingRate(every_minutes=60, amount=200),), daily_cap=1500),
        )
        await engine.put_lot(lot)
        spots = []
        for i in range(SPOTS):
            s = parq.Spot(uuid.uuid4(), lot.id, f"B-{i:05}")
            await engine.put_spot(s)
            spots.append(s.id)
        users = [uuid.uuid4() for _ in range(1000)]
        work = args(lot, spots, users, 0, n)
        t = time.perf_counter()
        for k in range(0, n, batch):
            await asyncio.gather(*[engine.hold(u, l, s, e, spot=sp) for u, l, s, e, sp in work[k:k + batch]])
        return n / (time.perf_counter() - t)

    return asyncio.run(main())


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    runs = [sync_rate(n) for _ in range(3)]
    a = [async_rate(n // 4) for _ in range(3)]
    print(f"python_sync_one_thread: {min(runs):,.0f} / {sorted(runs)[1]:,.0f} / {max(runs):,.0f} holds/s (min / median / max of 3)")
    print(f"python_asyncio_gather_1000: {min(a):,.0f} / {sorted(a)[1]:,.0f} / {max(a):,.0f} holds/s (min / median / max of 3)")
    med = sorted(runs)[1]
    print(f"python_sync_per_call_us: {1e6 / med:.2f}")
