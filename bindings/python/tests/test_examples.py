"""The README's FastAPI and Django examples, run as an integrator would: a hold, a retried
hold with the same Idempotency-Key, a conflict as problem+json, and the provider's webhook."""

from __future__ import annotations

import asyncio
import importlib
import sys
import uuid
from pathlib import Path
from typing import Any

import parq
from conftest import sample_lot

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))


def test_the_readme_shows_the_examples_as_they_are() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in ("fastapi_app.py", "django_app.py"):
        assert (ROOT / "examples" / name).read_text() in readme, f"README's copy of {name} is stale"


async def _setup(engine: Any) -> tuple[parq.Lot, list[parq.Spot]]:
    op = parq.Operator(uuid.uuid4(), "Op")
    await engine.put_operator(op)
    lot, spots = sample_lot(op.id)
    await engine.put_lot(lot)
    for s in spots:
        await engine.put_spot(s)
    return lot, spots


def test_fastapi_example() -> None:
    from fastapi.testclient import TestClient

    mod = importlib.import_module("fastapi_app")
    lot, spots = asyncio.run(_setup(mod.engine))
    client = TestClient(mod.app)
    driver = str(uuid.uuid4())
    body = {"lot": str(lot.id), "start": "2030-01-07T09:00:00Z", "end": "2030-01-07T11:00:00Z", "spot": str(spots[0].id)}
    headers = {"X-User-Id": driver, "Idempotency-Key": "fa-1"}
    r = client.post("/holds", json=body, headers=headers)
    assert r.status_code == 201, r.text
    held = r.json()
    assert held["state"] == "held" and held["price"] == {"minor": 400, "currency": "EUR"}
    again = client.post("/holds", json=body, headers=headers)
    assert again.status_code == 201 and again.json()["id"] == held["id"]

    taken = client.post("/holds", json=body, headers={"X-User-Id": str(uuid.uuid4())})
    assert taken.status_code == 409
    assert taken.headers["content-type"] == "application/problem+json"
    assert taken.json()["title"] == "conflict"
    naive = client.post("/holds", json={**body, "start": "2030-01-07T09:00:00"}, headers={"X-User-Id": driver})
    assert naive.status_code == 400 and "naive" in naive.json()["detail"]

    co = client.post(f"/reservations/{held['id']}/checkout", headers={"X-User-Id": driver})
    assert co.status_code == 200, co.text
    delivery = mod.engine.simulate_payment(co.json()["intent"], capture=True)
    hook = client.post("/webhooks/stripe", content=delivery.body, headers={"Stripe-Signature": delivery.signature})
    assert hook.status_code == 200 and hook.json() == {"reservation": held["id"], "state": "confirmed"}
    forged = client.post("/webhooks/stripe", content=delivery.body + b" ", headers={"Stripe-Signature": delivery.signature})
    assert forged.status_code == 400


def test_django_example() -> None:
    from django.test import Client  # type: ignore[import-untyped]

    mod = importlib.import_module("django_app")
    engine = mod.ENGINE
    op = parq.Operator(uuid.uuid4(), "Op")
    engine.put_operator(op)
    lot, spots = sample_lot(op.id)
    engine.put_lot(lot)
    for s in spots:
        engine.put_spot(s)
    client = Client()
    driver = str(uuid.uuid4())
    body = {"user": driver, "lot": str(lot.id), "start": "2030-01-07T09:00:00+00:00",
            "end": "2030-01-07T10:00:00+00:00", "spot": str(spots[1].id)}
    r = client.post("/holds", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="dj-1")
    assert r.status_code == 201, r.content
    held = r.json()
    again = client.post("/holds", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="dj-1")
    assert again.json()["id"] == held["id"]
    other = client.post("/holds", {**body, "user": str(uuid.uuid4())}, content_type="application/json")
    assert other.status_code == 409 and other["Content-Type"] == "application/problem+json"
    bad = client.post("/holds", {**body, "start": "soon"}, content_type="application/json")
    assert bad.status_code == 400

    co = engine.checkout(held["id"], driver)
    d = engine.simulate_payment(co.intent.id)
    hook = client.post("/webhooks/stripe", d.body, content_type="application/json", HTTP_STRIPE_SIGNATURE=d.signature)
    assert hook.status_code == 200 and hook.json()["state"] == "confirmed"
    assert engine.get(held["id"]).state is parq.ReservationState.CONFIRMED
    unsigned = client.post("/webhooks/stripe", d.body, content_type="application/json")
    assert unsigned.status_code == 400
