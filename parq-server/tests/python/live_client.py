"""Live updates through python-socketio (PyPI), against a running `parq serve`.

    python3 live_client.py <socket_base_url> <lot_id> [<rest_base_url>]

Holds are made over REST at <rest_base_url> (another replica of the same service, or the same
server when omitted); the socket is connected to <socket_base_url>. Checks that the lot's
event and the driver's private event arrive, with consecutive sequence numbers, and that a
client reconnecting with its last sequence number receives exactly the events it missed.
Exits non-zero with a message on the first failed check. Needs: pip install
"python-socketio[asyncio_client]".
"""

import asyncio
import datetime as dt
import json
import sys
import urllib.error
import urllib.request
import uuid

import socketio

checks = 0


def check(cond, what, got=None):
    global checks
    if not cond:
        print(f"FAILED: {what}" + ("" if got is None else f"\n  got: {got!r}"), file=sys.stderr)
        sys.exit(1)
    checks += 1


def rest(base, method, path, token=None, body=None):
    headers = {"accept": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    if method != "GET":
        headers["idempotency-key"] = str(uuid.uuid4())
    data = None
    if body is not None:
        headers["content-type"] = "application/json"
        data = json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read().decode()
            return r.status, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode() or "null")


class Client:
    """A socket that records what it receives."""

    def __init__(self):
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events = []
        self.mine = []
        self.sio.on("event", self.events.append)
        self.sio.on("reservation", self.mine.append)

    async def connect(self, base, token):
        await self.sio.connect(base, transports=["websocket"], auth={"token": token}, wait_timeout=30)

    async def subscribe(self, body):
        return await self.sio.call("subscribe", body, timeout=30)


async def until(cond, what, seconds=15.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not cond():
        if loop.time() > deadline:
            check(False, f"in time: {what}")
        await asyncio.sleep(0.01)


async def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sock_base, lot = sys.argv[1], sys.argv[2]
    rest_base = sys.argv[3] if len(sys.argv) > 3 else sock_base

    email, password = f"py-{uuid.uuid4()}@live.parq.test", "a long enough password"
    status, _ = rest(rest_base, "POST", "/api/v1/auth/register", body={"email": email, "password": password})
    check(status == 201, "register", status)
    status, login = rest(rest_base, "POST", "/api/v1/auth/login", body={"email": email, "password": password})
    check(status == 200, "log in", login)
    token = login["token"]
    _, me = rest(rest_base, "GET", "/api/v1/me", token)

    now = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
    start = now - dt.timedelta(minutes=now.minute % 15) + dt.timedelta(days=2)
    window = {"start": start.isoformat(), "end": (start + dt.timedelta(hours=1)).isoformat()}
    q = f"start={window['start']}&end={window['end']}".replace("+", "%2B")
    status, avail = rest(rest_base, "GET", f"/api/v1/lots/{lot}/availability?{q}")
    check(status == 200, "availability", avail)
    free = [s["spot"]["id"] for s in avail["spots"] if s["free"]]
    check(len(free) >= 3, "three free spots", len(free))

    def hold(spot):
        status, r = rest(rest_base, "POST", "/api/v1/holds", token, {"lot_id": lot, "spot_id": spot, **window})
        check(status == 201, "a hold over REST", r)
        return r

    c = Client()
    await c.connect(sock_base, token)
    ack = await c.subscribe({"lot": lot})
    check(ack.get("ok") is True and ack["lot"] == lot, "subscribe is acknowledged", ack)
    seq0 = ack["seq"]

    r = hold(free[0])
    await until(lambda: c.events and c.mine, "the hold's events reach the socket")
    e = c.events[0]
    check(e["seq"] == seq0 + 1 and e["kind"] == "held" and e["reservation"] == r["id"], "the lot's event", e)
    check(e["spot"] == free[0] and "user" not in e, "it names the spot, not the driver", e)
    check(c.mine[0]["user"] == me["id"] and c.mine[0]["seq"] == e["seq"], "the driver's own event", c.mine)

    # Away while two more holds are made; back with the last number seen.
    last = c.events[-1]["seq"]
    await c.sio.disconnect()
    hold(free[1])
    hold(free[2])
    back = Client()
    await back.connect(sock_base, token)
    ack = await back.subscribe({"lot": lot, "after": last})
    got = [(x["seq"], x["kind"]) for x in back.events]
    check(got == [(last + 1, "held"), (last + 2, "held")], "exactly the two missed events", got)
    check(ack["seq"] == last + 2, "the acknowledgement names the latest", ack)
    await asyncio.sleep(0.3)
    check(len(back.events) == 2, "nothing twice", back.events)
    await back.sio.disconnect()
    print(f"live (python-socketio): {checks} checks passed")


if __name__ == "__main__":
    asyncio.run(main())
