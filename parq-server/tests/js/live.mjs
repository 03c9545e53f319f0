// Live updates through the official Socket.IO client (npm `socket.io-client`), against a
// running `parq serve`:
//
//   node live.mjs <base_url> <lot_id>
//
// Holds and cancellations are made over REST; the checks are on what the sockets receive:
// the lot's room gets every event with its sequence number, the driver's private room gets
// their own reservations only, a bad token is refused, and a client that reconnects with the
// last sequence number it saw receives exactly the events it missed, in order, then live ones.
// Exits non-zero with a message on the first failed check.
import { io } from "socket.io-client";

const [base, lot] = process.argv.slice(2);
if (!base || !lot) {
  console.error("usage: node live.mjs <base_url> <lot_id>");
  process.exit(2);
}

let checks = 0;
function check(cond, what, detail) {
  if (!cond) {
    console.error(`FAILED: ${what}${detail === undefined ? "" : `\n  got: ${JSON.stringify(detail)}`}`);
    process.exit(1);
  }
  checks += 1;
}

async function rest(method, path, token, body) {
  const headers = { accept: "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  if (method !== "GET") headers["idempotency-key"] = crypto.randomUUID();
  if (body !== undefined) headers["content-type"] = "application/json";
  const r = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

async function driver(name) {
  const email = `${name}-${crypto.randomUUID()}@live.parq.test`;
  const password = "a long enough password";
  const reg = await rest("POST", "/api/v1/auth/register", null, { email, password });
  check(reg.status === 201, `register ${name}`, reg);
  const login = await rest("POST", "/api/v1/auth/login", null, { email, password });
  check(login.status === 200, `log in ${name}`, login);
  const me = await rest("GET", "/api/v1/me", login.body.token);
  return { token: login.body.token, id: me.body.id };
}

// A window tomorrow, on the quarter hour, so the lot is open and nothing else overlaps.
const start = new Date(Math.ceil(Date.now() / 900_000) * 900_000 + 24 * 3600_000);
const window = { start: start.toISOString(), end: new Date(start.getTime() + 2 * 3600_000).toISOString() };

/** A socket with every received `event` and `reservation` recorded. */
function connect(auth) {
  const s = io(base, { transports: ["websocket"], reconnection: false, forceNew: true, auth });
  s.events = [];
  s.mine = [];
  s.on("event", (e) => s.events.push(e));
  s.on("reservation", (e) => s.mine.push(e));
  return s;
}

function connected(s) {
  return new Promise((resolve, reject) => {
    if (s.connected) return resolve();
    s.once("connect", resolve);
    s.once("connect_error", reject);
  });
}

function subscribe(s, body) {
  return s.timeout(20_000).emitWithAck("subscribe", body);
}

async function until(cond, what, ms = 15_000) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) check(false, `in time: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const quiet = (ms) => new Promise((r) => setTimeout(r, ms));

async function hold(d, spot) {
  const r = await rest("POST", "/api/v1/holds", d.token, { lot_id: lot, spot_id: spot, ...window });
  check(r.status === 201, "a hold over REST", r);
  return r.body;
}

const alice = await driver("alice");
const bob = await driver("bob");
const avail = await rest("GET", `/api/v1/lots/${lot}/availability?start=${window.start}&end=${window.end}`);
check(avail.status === 200, "availability", avail);
const free = avail.body.spots.filter((s) => s.free).map((s) => s.spot.id);
check(free.length >= 6, "six free spots", free.length);

// A bad token is refused at the handshake, with a reason.
const refused = await connected(connect({ token: "pqs_not-a-session" })).then(
  () => null,
  (e) => e,
);
check(refused && /^unauthorized/.test(refused.message), "a bad token is refused", refused && refused.message);

// Alice (signed in) and an anonymous map follow the lot.
const a = connect({ token: alice.token });
const anon = connect(undefined);
await Promise.all([connected(a), connected(anon)]);
const ackA = await subscribe(a, { lot });
const ackAnon = await subscribe(anon, { lot });
check(ackA.ok === true && ackA.lot === lot && Number.isInteger(ackA.seq), "subscribe is acknowledged", ackA);
check(ackAnon.seq === ackA.seq, "both start from the lot's latest sequence number", [ackA, ackAnon]);
const s0 = ackA.seq;

// Bob holds: both sockets get the lot's event; nobody gets a private `reservation`.
const bobs = await hold(bob, free[0]);
await until(() => a.events.length === 1 && anon.events.length === 1, "bob's hold reaches both sockets");
let e = a.events[0];
check(e.seq === s0 + 1 && e.kind === "held" && e.state === "held", "the event is bob's hold, numbered next", e);
check(e.spot === free[0] && e.reservation === bobs.id && e.lot === lot, "it names the spot and reservation", e);
check(e.window.start && e.window.end && e.at, "it carries the window and the time", e);
check(!("user" in e), "a lot's event does not name the driver", e);
check(JSON.stringify(anon.events[0]) === JSON.stringify(e), "the anonymous map got the same event", anon.events[0]);

// Alice holds: her private room also gets it, with her id; the anonymous socket gets no private event.
const alices = await hold(alice, free[1]);
await until(() => a.mine.length === 1 && a.events.length === 2, "alice's own hold reaches her room");
check(a.mine[0].reservation === alices.id && a.mine[0].user === alice.id, "the private event is hers", a.mine[0]);
check(a.events[1].seq === s0 + 2, "numbered next again", a.events[1]);
await quiet(200);
check(anon.mine.length === 0, "no private events for an anonymous socket", anon.mine);
check(a.mine.length === 1, "no private event for someone else's hold", a.mine);

// Refusals are acknowledged, not dropped.
const unknown = await subscribe(a, { lot: "0190b7a0-0000-7000-8000-000000000000" });
check(unknown.ok === false && unknown.error.code === "not_found" && unknown.error.status === 404, "an unknown lot", unknown);
const malformed = await subscribe(a, { lot: "nope", after: -1 });
check(malformed.ok === false && malformed.error.code === "bad_request", "a malformed subscribe", malformed);

// Alice goes away. Meanwhile bob cancels, holds again, and a third hold is made.
const lastSeen = a.events.at(-1).seq;
a.disconnect();
const cancel = await rest("POST", `/api/v1/reservations/${bobs.id}/cancel`, bob.token, {});
check(cancel.status === 200, "bob cancels", cancel);
await hold(bob, free[2]);
await hold(bob, free[3]);
await until(() => anon.events.length === 5, "the anonymous map saw the three events live");

// Back, with the last number she saw: exactly the three she missed, in order, then live.
const back = connect({ token: alice.token });
await connected(back);
const ackBack = await subscribe(back, { lot, after: lastSeen });
check(ackBack.ok && ackBack.seq === lastSeen + 3, "the acknowledgement names the latest", ackBack);
check(
  JSON.stringify(back.events.map((x) => [x.seq, x.kind])) ===
    JSON.stringify([
      [lastSeen + 1, "cancelled"],
      [lastSeen + 2, "held"],
      [lastSeen + 3, "held"],
    ]),
  "exactly the missed events, before the acknowledgement",
  back.events,
);
check(
  JSON.stringify(back.events) === JSON.stringify(anon.events.slice(2)),
  "the replay equals what the live socket received",
  [back.events, anon.events],
);
await hold(alice, free[4]);
await until(() => back.events.length === 4, "a live event after the replay");
await quiet(300);
check(back.events.length === 4 && back.events[3].seq === lastSeen + 4, "each event once", back.events);
check(back.mine.length === 1, "her private room works after reconnecting", back.mine);

// Subscribing twice does not duplicate; unsubscribing stops the lot's events.
await subscribe(back, { lot });
const left = await back.timeout(20_000).emitWithAck("unsubscribe", { lot });
check(left.ok === true, "unsubscribe is acknowledged", left);
await hold(bob, free[5]);
await until(() => anon.events.length === 7, "the map still follows");
await quiet(300);
check(back.events.length === 4, "no lot events after unsubscribing", back.events);

back.disconnect();
anon.disconnect();
console.log(`live (socket.io-client): ${checks} checks passed`);
process.exit(0);
