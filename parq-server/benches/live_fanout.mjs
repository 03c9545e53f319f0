// Time from a hold to its live event, at many connected Socket.IO clients.
//
//   node parq-server/benches/live_fanout.mjs <base_url> <lot_id> [clients=1000] [holds=200]
//   PAUSE_MS=50 WORKERS=2 node parq-server/benches/live_fanout.mjs …
//
// Spreads <clients> official socket.io-client sockets (WebSocket transport), all following the
// lot, over WORKERS child processes (default 2, so one client process does not decode every
// frame alone), then makes <holds> holds over REST, one after another with PAUSE_MS
// (default 20) between them, each for its own window. For every (hold, client) pair it takes
// the time from just before the POST was sent to the moment that client received the hold's
// `event`, on the machine's clock (`performance.timeOrigin + performance.now()`, shared by
// the processes), after WARMUP (default 10) uncounted holds. Prints p50/p90/p99/max of those delays, the holds' own REST latency, and
// how many events were missed (there must be none). Uses the node modules of
// parq-server/tests/js.
import { fork } from "node:child_process";
import { createRequire } from "node:module";
import { performance } from "node:perf_hooks";

const require = createRequire(new URL("../tests/js/package.json", import.meta.url));
const now = () => performance.timeOrigin + performance.now();

// ---- a worker: its share of the clients; reports every receipt when told to stop.
if (process.argv[2] === "--worker") {
  const { io } = require("socket.io-client");
  const [, , , base, lot, countArg] = process.argv;
  const received = [];
  const sockets = [];
  for (let i = 0; i < Number(countArg); i++) {
    const s = io(base, { transports: ["websocket"], reconnection: false, forceNew: true });
    s.on("event", (e) => {
      if (e.kind === "held") received.push([Date.parse(e.window.start), now()]);
    });
    sockets.push(s);
  }
  await Promise.all(
    sockets.map(
      (s) =>
        new Promise((resolve, reject) => {
          s.once("connect", () =>
            s.timeout(30_000).emitWithAck("subscribe", { lot }).then((ack) => {
              if (ack.ok) resolve();
              else reject(new Error(JSON.stringify(ack)));
            }, reject),
          );
          s.once("connect_error", reject);
        }),
    ),
  );
  process.send({ ready: true });
  process.on("message", (m) => {
    if (m.stop) {
      for (const s of sockets) s.disconnect();
      process.send({ received }, () => process.exit(0));
    }
  });
} else {
  const [base, lot, clientsArg, holdsArg] = process.argv.slice(2);
  if (!base || !lot) {
    console.error("usage: node live_fanout.mjs <base_url> <lot_id> [clients] [holds]");
    process.exit(2);
  }
  const CLIENTS = Number(clientsArg ?? 1000);
  const HOLDS = Number(holdsArg ?? 200);
  const PAUSE_MS = Number(process.env.PAUSE_MS ?? 20);
  const WORKERS = Math.max(1, Number(process.env.WORKERS ?? 2));

  const rest = async (method, path, token, body) => {
    const headers = { "content-type": "application/json" };
    if (token) headers.authorization = `Bearer ${token}`;
    if (method !== "GET") headers["idempotency-key"] = crypto.randomUUID();
    const r = await fetch(base + path, { method, headers, body: body && JSON.stringify(body) });
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
  const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
  const fmt = (ms) => `${ms.toFixed(2)} ms`;
  const summary = (values) => {
    const s = [...values].sort((a, b) => a - b);
    return `p50 ${fmt(pct(s, 50))}, p90 ${fmt(pct(s, 90))}, p99 ${fmt(pct(s, 99))}, max ${fmt(s.at(-1))}`;
  };

  const t0 = now();
  const workers = [];
  for (let w = 0; w < WORKERS; w++) {
    const share = Math.floor(CLIENTS / WORKERS) + (w < CLIENTS % WORKERS ? 1 : 0);
    const child = fork(new URL(import.meta.url).pathname, ["--worker", base, lot, String(share)]);
    workers.push(new Promise((resolve, reject) => {
      child.once("message", (m) => (m.ready ? resolve(child) : reject(new Error("worker failed"))));
      child.once("exit", (code) => code && reject(new Error(`worker exited with ${code}`)));
    }));
  }
  const children = await Promise.all(workers);
  console.log(`${CLIENTS} clients in ${WORKERS} processes connected and subscribed in ${fmt(now() - t0)}`);

  const email = `fanout-${crypto.randomUUID()}@parq.test`;
  await rest("POST", "/api/v1/auth/register", null, { email, password: "fan-out benchmark" });
  const { token } = await rest("POST", "/api/v1/auth/login", null, { email, password: "fan-out benchmark" });

  // Windows a week ahead, one hour each, one after another: every hold is new and has its own.
  const first = Math.ceil(Date.now() / 900_000) * 900_000 + 7 * 24 * 3600_000;
  const sentAt = new Map();
  const restLatency = [];
  // The first WARMUP holds (default 10) warm both sides up and are not counted.
  const WARMUP = Number(process.env.WARMUP ?? 10);
  for (let i = -WARMUP; i < HOLDS; i++) {
    const start = new Date(first + i * 3600_000);
    const end = new Date(start.getTime() + 3600_000);
    const sent = now();
    if (i >= 0) sentAt.set(start.getTime(), sent);
    await rest("POST", "/api/v1/holds", token, { lot_id: lot, start: start.toISOString(), end: end.toISOString() });
    if (i >= 0) restLatency.push(now() - sent);
    await new Promise((res) => setTimeout(res, PAUSE_MS));
  }
  await new Promise((res) => setTimeout(res, 1000)); // the last events
  const results = await Promise.all(
    children.map((c) => new Promise((resolve) => {
      c.once("message", (m) => resolve(m.received));
      c.send({ stop: true });
    })),
  );
  const delays = [];
  const counted = (key) => sentAt.has(key);
  for (const received of results) {
    for (const [key, at] of received) {
      const sent = sentAt.get(key);
      if (sent !== undefined) delays.push(at - sent);
    }
  }
  if (process.env.DETAIL) {
    // Per hold: its fastest and slowest delivery, per worker, for the slowest holds.
    const perHold = new Map();
    results.forEach((received, w) => {
      for (const [key, at] of received) {
        if (!counted(key)) continue;
        const d = at - sentAt.get(key);
        const h = perHold.get(key) ?? { min: Infinity, max: [] };
        h.min = Math.min(h.min, d);
        h.max[w] = Math.max(h.max[w] ?? 0, d);
        perHold.set(key, h);
      }
    });
    const worst = [...perHold.entries()].sort((a, b) => Math.max(...b[1].max) - Math.max(...a[1].max)).slice(0, 8);
    for (const [key, h] of worst) {
      console.log(`  hold ${(key - first) / 3600_000}: first delivery ${fmt(h.min)}, slowest per worker ${h.max.map(fmt).join(", ")}`);
    }
  }
  console.log(`holds over REST: ${summary(restLatency)} (${HOLDS} holds, ${PAUSE_MS} ms apart)`);
  console.log(`hold -> event at ${CLIENTS} clients: ${summary(delays)} (${delays.length} deliveries)`);
  const missed = CLIENTS * HOLDS - delays.length;
  console.log(`events missed: ${missed}`);
  process.exit(missed === 0 ? 0 : 1);
}
