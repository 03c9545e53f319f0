# examples/fastapi_app.py — a FastAPI back end on parq.AsyncEngine
import os
import uuid
from datetime import datetime
from typing import Optional

from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

import parq

# One engine per process, on the application's own PostgreSQL (or memory: for a demo).
engine = parq.AsyncEngine(os.environ.get("PARQ_STORE", "memory:"), schema=os.environ.get("PARQ_SCHEMA", "parq"))
app = FastAPI()

# Every parq error code as an HTTP status; the body is application/problem+json.
STATUS = {
    "conflict": 409, "not_found": 404, "invalid_transition": 409, "hold_expired": 410,
    "stale_fence": 409, "limit_exceeded": 422, "idempotency_mismatch": 422, "payment_declined": 402,
    "unavailable": 503, "invalid": 400, "scan_refused": 403, "forbidden": 403, "backend": 503,
}


@app.exception_handler(parq.ParqError)
async def problem(request: Request, exc: parq.ParqError) -> JSONResponse:
    status = STATUS.get(exc.code, 503)
    return JSONResponse(
        {"type": f"https://parq.example/problems/{exc.code}", "title": exc.code, "status": status, "detail": str(exc)},
        status_code=status,
        media_type="application/problem+json",
    )


class HoldIn(BaseModel):
    lot: uuid.UUID
    start: datetime
    end: datetime
    spot: Optional[uuid.UUID] = None


@app.post("/holds", status_code=201)
async def hold(
    body: HoldIn,
    x_user_id: uuid.UUID = Header(),  # your authentication gives the driver's id
    idempotency_key: Optional[str] = Header(default=None),
) -> dict:
    r = await engine.hold(x_user_id, body.lot, body.start, body.end, spot=body.spot, idempotency_key=idempotency_key)
    return r.to_dict()


@app.post("/reservations/{reservation}/checkout")
async def checkout(reservation: uuid.UUID, x_user_id: uuid.UUID = Header()) -> dict:
    co = await engine.checkout(reservation, x_user_id)
    return {"reservation": co.reservation.to_dict(), "client_secret": co.intent.client_secret, "intent": co.intent.id}


@app.post("/webhooks/stripe")
async def stripe_webhook(request: Request, stripe_signature: str = Header()) -> dict:
    # The raw body, exactly as Stripe sent it: the signature covers its bytes.
    r = await engine.handle_webhook(await request.body(), stripe_signature)
    return {"reservation": str(r.id), "state": r.state.value}
