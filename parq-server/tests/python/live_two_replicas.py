"""Live updates on two replicas while holds are made through both, with python-socketio.

    python3 live_two_replicas.py <replica_a_url> <replica_b_url> <lot_id>

One socket on each replica subscribes to the lot. Holds are made concurrently through both
replicas over REST. Midway, the socket on replica B disconnects, more holds are made, and a new
socket resumes on B from the last sequence number the first one saw. At the end every socket
(A's, and B's before plus after the resumption) must have seen every event of the lot since it
subscribed exactly once, in order (consecutive sequence numbers), including the `held` event of
every hold that was made. Exits non-zero with a message on the first failed check. Needs: pip
install "python-socketio[asyncio_client]".
"""

import asyncio
import datetime as dt
import sys
import uuid

from live_client import Client, check, rest, until

HOLDS_PER_ROUND = 12


async def main():
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    base_a, base_b, lot = sys.argv[1], sys.argv[2], sys.argv[3]

    def account(i):
        # A driver per hold: the lot allows three live holds per driver.
        base = base_a if i % 2 == 0 else base_b
        email, password = f"py-{uuid.uuid4()}@two.parq.test", "a long enough password"
        status, _ = rest(base, "POST", "/api/v1/auth/register", body={"email": email, "password": password})
        check(status == 201, "register", status)
        status, login = rest(base, "POST", "/api/v1/auth/login", body={"email": email, "password": password})
        check(status == 200, "log in", login)
        return login["token"]

    tokens = await asyncio.gather(*(asyncio.to_thread(account, i) for i in range(2 * HOLDS_PER_ROUND)))

    now = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
    start = now - dt.timedelta(minutes=now.minute % 15) + dt.timedelta(days=3)
    windows = []
    for i in range(HOLDS_PER_ROUND):
        s = start + dt.timedelta(hours=i)
        windows.append({"start": s.isoformat(), "end": (s + dt.timedelta(hours=1)).isoformat()})
    q = f"start={windows[0]['start']}&end={windows[-1]['end']}".replace("+", "%2B")
    status, avail = rest(base_a, "GET", f"/api/v1/lots/{lot}/availability?{q}")
    check(status == 200, "availability", avail)
    free = [s["spot"]["id"] for s in avail["spots"] if s["free"]]
    check(len(free) >= 2, "two spots free for the whole day", len(free))

    held = []

    def hold(i):
        # Even holds through A on one spot, odd ones through B on another, each in its own hour.
        base, spot = (base_a, free[0]) if i % 2 == 0 else (base_b, free[1])
        body = {"lot_id": lot, "spot_id": spot, **windows[i // 2]}
        status, r = rest(base, "POST", "/api/v1/holds", tokens[i], body)
        check(status == 201, f"hold {i} over REST", r)
        held.append(r["id"])

    async def holds(indices):
        await asyncio.gather(*(asyncio.to_thread(hold, i) for i in indices))

    a, b = Client(), Client()
    await a.connect(base_a, tokens[0])
    await b.connect(base_b, tokens[1])
    ack_a = await a.subscribe({"lot": lot})
    ack_b = await b.subscribe({"lot": lot})
    check(ack_a.get("ok") is True and ack_b.get("ok") is True, "both subscriptions acknowledged", (ack_a, ack_b))
    seq_a, seq_b = ack_a["seq"], ack_b["seq"]

    # Round one, through both replicas at once.
    await holds(range(HOLDS_PER_ROUND))
    await until(lambda: b.events and b.events[-1]["seq"] >= seq_b + HOLDS_PER_ROUND, "round one reaches B")

    # B goes away; round two; B comes back with the last number it saw.
    last_b = b.events[-1]["seq"]
    await b.sio.disconnect()
    await holds(range(HOLDS_PER_ROUND, 2 * HOLDS_PER_ROUND))
    b2 = Client()
    await b2.connect(base_b, tokens[1])
    ack = await b2.subscribe({"lot": lot, "after": last_b})
    check(ack.get("ok") is True, "resumption acknowledged", ack)
    final = ack["seq"]

    await until(lambda: a.events and a.events[-1]["seq"] >= final, "every event reaches A")
    await until(lambda: b2.events and b2.events[-1]["seq"] >= final, "every missed event reaches B again")
    await asyncio.sleep(0.5)

    def seqs(c):
        return [e["seq"] for e in c.events]

    check(seqs(a) == list(range(seq_a + 1, final + 1)), "A saw every event once, in order", seqs(a))
    seen_b = seqs(b) + seqs(b2)
    check(seen_b == list(range(seq_b + 1, final + 1)), "B saw every event once, in order, across its resumption", seen_b)
    for c, name in ((a, "A"), (b2, "B")):
        ids = {e["reservation"] for e in c.events if e["kind"] == "held"}
        if c is b2:
            ids |= {e["reservation"] for e in b.events if e["kind"] == "held"}
        check(set(held) <= ids, f"{name} saw the held event of every hold", sorted(set(held) - ids))
    await a.sio.disconnect()
    await b2.sio.disconnect()
    print(f"two replicas (python-socketio): {len(held)} holds, {final - seq_a} events each; all checks passed")


asyncio.run(main())
