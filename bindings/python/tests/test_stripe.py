"""The engine with the Stripe gateway, against localstripe (a Stripe emulator from PyPI) on
loopback: checkout creates a real PaymentIntent, the driver pays it as Stripe.js would, and
Stripe's signed webhook — passed through as a Django or FastAPI view receives it — confirms
and captures; cancelling refunds at the provider exactly once."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pytest

import parq
from conftest import sample_lot

SECRET_KEY = "sk_test_parq"
WEBHOOK_SECRET = "whsec_parq_test"


class LocalStripe:
    def __init__(self) -> None:
        exe = shutil.which("localstripe")
        assert exe, "localstripe is not installed: pip install localstripe (scripts/test does this)"
        for _ in range(5):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
            self.url = f"http://127.0.0.1:{self.port}"
            self.proc = subprocess.Popen([exe, "--port", str(self.port), "--from-scratch"],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(300):
                if self.proc.poll() is not None:
                    break
                try:
                    if self.call("GET", "/v1/balance")[0] == 200:
                        return
                except OSError:
                    pass
                time.sleep(0.1)
            self.stop()
        raise AssertionError("localstripe did not come up on a free loopback port")

    def call(self, method: str, path: str, form: dict[str, str] | None = None) -> tuple[int, Any]:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {SECRET_KEY}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def localstripe() -> Iterator[LocalStripe]:
    ls = LocalStripe()
    yield ls
    ls.stop()


def signed_event(event_id: str, kind: str, intent: dict[str, Any]) -> tuple[bytes, str]:
    """A webhook as Stripe sends it: the event envelope and its `Stripe-Signature` header."""
    t = int(time.time())
    body = json.dumps({
        "id": event_id, "object": "event", "api_version": "2025-09-30.clover", "created": t,
        "livemode": False, "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None},
        "type": kind, "data": {"object": intent},
    }).encode()
    sig = hmac.new(WEBHOOK_SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return body, f"t={t},v1={sig}"


def test_checkout_pay_webhook_capture_and_refund_at_localstripe(localstripe: LocalStripe) -> None:
    e = parq.Engine(gateway="stripe", stripe_secret_key=SECRET_KEY, webhook_secret=WEBHOOK_SECRET,
                    stripe_api_base=localstripe.url, stripe_send_description=False)
    op = parq.Operator(uuid.uuid4(), "Op")
    e.put_operator(op)
    lot, spots = sample_lot(op.id)
    e.put_lot(lot)
    for s in spots:
        e.put_spot(s)
    # A window a day ahead, on the lot's 15 minutes: a full refund by the policy.
    start = (datetime.now(timezone.utc) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    driver = uuid.uuid4()
    held = e.hold(driver, lot.id, start, start + timedelta(hours=2), spot=spots[0].id)

    co = e.checkout(held.id, driver)
    assert co.intent.id.startswith("pi_") and co.intent.client_secret
    status, pi = localstripe.call("GET", f"/v1/payment_intents/{co.intent.id}")
    assert status == 200 and pi["amount"] == held.price.minor and pi["currency"] == "eur"
    assert pi["capture_method"] == "manual" and pi["metadata"]["reservation"] == str(held.id)
    # A retried checkout does not make a second intent.
    assert e.checkout(held.id, driver).intent.id == co.intent.id

    # The driver's app confirms the intent with a test card, as Stripe.js would.
    assert localstripe.call("POST", f"/v1/payment_intents/{co.intent.id}", {"payment_method": "pm_card_visa"})[0] == 200
    status, paid = localstripe.call("POST", f"/v1/payment_intents/{co.intent.id}/confirm", {})
    assert status == 200 and paid["status"] == "requires_capture", paid

    body, sig = signed_event("evt_1", "payment_intent.amount_capturable_updated", paid)
    with pytest.raises(parq.InvalidInput):
        e.handle_webhook(body, sig.replace("v1=", "v1=0"))  # a forged signature
    confirmed = e.handle_webhook(body, sig)
    assert confirmed.state is parq.ReservationState.CONFIRMED
    assert confirmed.payment is not None and confirmed.payment.captured
    assert localstripe.call("GET", f"/v1/payment_intents/{co.intent.id}")[1]["status"] == "succeeded"
    assert e.handle_webhook(body, sig).state is parq.ReservationState.CONFIRMED  # Stripe's retry

    cancelled = e.cancel(held.id, driver)
    assert cancelled.refunded == held.price
    assert e.cancel(held.id, driver).refunded == held.price  # retried: nothing more
    status, refunds = localstripe.call("GET", f"/v1/refunds?payment_intent={co.intent.id}")
    assert status == 200 and [r["amount"] for r in refunds["data"]] == [held.price.minor]
