"""Fixtures: an engine on memory and one on the real PostgreSQL (a schema of its own per test),
and the sample lot every ParQ test suite uses."""

from __future__ import annotations

import os
import subprocess
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

import pytest

import parq

PG_URL = os.environ.get("PARQ_TEST_PG_URL", "postgres://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("PARQ_TEST_REDIS_URL", "redis://127.0.0.1:6379")

# The instant every fixture's clock starts at: a Monday, 08:00 UTC (as in parq-core's suite).
EPOCH = datetime(2030, 1, 7, 8, 0, tzinfo=timezone.utc)


def at(hours: float = 0, minutes: float = 0) -> datetime:
    return EPOCH + timedelta(hours=hours, minutes=minutes)


def psql(sql: str) -> str:
    """Runs SQL on the test database (the store's own data, read from outside the engine)."""
    try:
        out = subprocess.run(
            ["psql", PG_URL, "-XtAq", "-v", "ON_ERROR_STOP=1", "-c", sql],
            check=True, capture_output=True, text=True, timeout=60,
        )
    except subprocess.CalledProcessError as e:
        raise AssertionError(
            f"psql failed ({e.stderr.strip()}); is PostgreSQL reachable at PARQ_TEST_PG_URL={PG_URL}?"
        ) from e
    return out.stdout.strip()


@dataclass
class City:
    engine: Any
    clock: parq.ManualClock
    operator: parq.Operator
    lot: parq.Lot
    spots: list[parq.Spot]
    schema: str | None

    def window(self, h: float, length: float) -> tuple[datetime, datetime]:
        return at(h), at(h + length)


def sample_lot(operator: uuid.UUID, **changes: Any) -> tuple[parq.Lot, list[parq.Spot]]:
    lot = parq.Lot(
        id=uuid.uuid4(),
        operator=operator,
        name="Eleftheria Square",
        location=parq.GeoPoint(35.1725, 33.3617),
        time_zone="Asia/Nicosia",
        granularity=timedelta(minutes=15),
        hold_ttl=timedelta(minutes=10),
        max_stay=timedelta(hours=72),
        grace=timedelta(minutes=15),
        rates=parq.RateTable(
            "EUR", (parq.IncrementingRate(every_minutes=60, amount=200),), daily_cap=1500
        ),
        cancellation=parq.CancellationPolicy(timedelta(hours=2), 50),
        **{"reentry": "not_allowed", **changes},
    )
    spots = [
        parq.Spot(
            uuid.uuid4(), lot.id, f"A-{i}",
            parq.SpotAttributes(ev=i <= 2, accessible=i == 4, size=parq.SpotSize.STANDARD),
        )
        for i in range(1, 5)
    ]
    return lot, spots


def fresh_schema() -> str:
    return f"py_{uuid.uuid4().hex[:16]}"


@pytest.fixture
def make_engine() -> Iterator[Callable[..., Any]]:
    """Builds engines; PostgreSQL ones get a schema of their own, dropped afterwards."""
    schemas: list[str] = []

    def make(backend: str, cls: Any = parq.Engine, **kw: Any) -> Any:
        if backend == "memory":
            return cls("memory:", **kw)
        schema = kw.pop("schema", None) or fresh_schema()
        schemas.append(schema)
        try:
            e = cls(PG_URL, schema=schema, **kw)
        except parq.Unavailable as err:
            raise AssertionError(
                f"cannot reach PostgreSQL at PARQ_TEST_PG_URL={PG_URL}: {err}; set PARQ_TEST_PG_URL"
            ) from err
        return e

    yield make
    for s in schemas:
        psql(f'DROP SCHEMA IF EXISTS "{s}" CASCADE')


def build_city(engine: Any, clock: parq.ManualClock, schema: str | None, **lot_changes: Any) -> City:
    operator = parq.Operator(uuid.uuid4(), "Nicosia Municipality", max_holds_per_user=None)
    engine.put_operator(operator)
    lot, spots = sample_lot(operator.id, **lot_changes)
    engine.put_lot(lot)
    for s in spots:
        engine.put_spot(s)
    return City(engine, clock, operator, lot, spots, schema)


@pytest.fixture(params=["memory", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def city(backend: str, make_engine: Callable[..., Any]) -> City:
    clock = parq.ManualClock(EPOCH)
    schema = None if backend == "memory" else fresh_schema()
    engine = make_engine(backend, clock=clock, **({"schema": schema} if schema else {}))
    engine.migrate()
    return build_city(engine, clock, schema)
