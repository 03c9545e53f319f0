// Headless-Chromium test of the live map page served by `parq serve`.
//
//   node map.mjs http://127.0.0.1:18090
//
// Env: PARQ_SCREENSHOT = where to keep the full-page PNG (default <workspace>/target/web/map.png).
// Needs Debian's chromium at /usr/bin/chromium (`apt-get install -y chromium`) and the server
// running on memory with the demo city. Exits nonzero with a message on the first failure.
import { mkdir } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { io } from 'socket.io-client';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CHROMIUM = '/usr/bin/chromium';
const TOTAL_LIMIT_MS = 120_000;
const LIVE_LIMIT_MS = 10_000;

const base = (process.argv[2] || '').replace(/\/+$/, '');
if (!/^https?:\/\/[^/]+$/.test(base)) {
  console.error('usage: node map.mjs <base_url>   (for example http://127.0.0.1:18090)');
  process.exit(2);
}
const origin = new URL(base).origin;
const screenshot = process.env.PARQ_SCREENSHOT
  ? path.resolve(process.env.PARQ_SCREENSHOT)
  : path.resolve(HERE, '../../../target/web/map.png');

// ------------------------------------------------------------------ reporting

let passed = 0;
const t0 = Date.now();
const since = () => `${((Date.now() - t0) / 1000).toFixed(1)}s`;
class Failure extends Error {}
const fail = (msg) => { throw new Failure(msg); };
function ok(what) {
  passed += 1;
  console.log(`ok ${passed} - ${what} (${since()})`);
}

/** Waits for `fn` in the page to return something truthy, or fails with `msg`. */
async function waitIn(page, fn, arg, timeout, msg) {
  try {
    return await (await page.waitForFunction(fn, arg, { timeout, polling: 50 })).jsonValue();
  } catch (e) {
    if (e instanceof Failure) throw e;
    fail(`${msg} (waited ${timeout} ms)`);
  }
}

// ------------------------------------------------------------------ the REST API, as another client

async function rest(method, urlPath, { token, body } = {}) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET') headers['Idempotency-Key'] = randomUUID();
  const res = await fetch(base + urlPath, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  if (!res.ok) {
    fail(`${method} ${urlPath} answered ${res.status}: ${json ? `${json.title}: ${json.detail}` : text.slice(0, 200)}`);
  }
  return json;
}

async function newDriver(tag) {
  const email = `${tag}-${randomUUID().slice(0, 8)}@example.com`;
  const password = `pw-${randomUUID()}`;
  await rest('POST', '/api/v1/auth/register', { body: { email, password } });
  const { token } = await rest('POST', '/api/v1/auth/login', { body: { email, password } });
  return { email, password, token };
}

// ------------------------------------------------------------------ the test

async function run(browser) {
  const context = await browser.newContext({
    viewport: { width: 1280, height: 800 },
    timezoneId: 'Asia/Nicosia',
    locale: 'en-GB',
  });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);

  // What the page does on the network and the console, checked at every step.
  const problems = [];
  const foreign = [];
  const unkeyed = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`uncaught exception: ${e.message}`));
  page.on('requestfailed', (r) => {
    const why = r.failure()?.errorText;
    // Signing in replaces the Socket.IO connection: closing the old one may abort its poll.
    if (why === 'net::ERR_ABORTED' && new URL(r.url()).pathname.startsWith('/socket.io/')) return;
    problems.push(`request failed: ${r.method()} ${r.url()} (${why})`);
  });
  page.on('response', (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.request().method()} ${r.url()}`); });
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith('data:') && !u.startsWith('blob:') && new URL(u).origin !== origin) foreign.push(u);
    if (['POST', 'PUT', 'PATCH', 'DELETE'].includes(r.method()) && new URL(u).pathname.startsWith('/api/')
      && !r.headers()['idempotency-key']) unkeyed.push(`${r.method()} ${u}`);
  });
  const clean = (step) => {
    if (problems.length) fail(`${step}: the page had errors:\n  ${problems.join('\n  ')}`);
    if (foreign.length) fail(`${step}: the page loaded from other hosts:\n  ${foreign.join('\n  ')}`);
    if (unkeyed.length) fail(`${step}: unsafe requests without Idempotency-Key:\n  ${unkeyed.join('\n  ')}`);
  };

  // a. The page loads, the map draws.
  const resp = await page.goto(`${base}/`, { waitUntil: 'load' });
  if (!resp || resp.status() !== 200) fail(`GET / answered ${resp && resp.status()}`);
  await waitIn(page, () => window.parq && window.parq.webgl !== null, null, 10_000,
    'the page never started (window.parq.webgl stayed null)');
  const webgl = await page.evaluate(() => window.parq.webgl);
  if (!webgl) {
    const note = await page.textContent('#map-note');
    fail(`MapLibre could not create a WebGL context in headless Chromium: the page shows "${note}"`);
  }
  await waitIn(page, () => window.parq.mapLoaded, null, 20_000, "the map's load event never fired");
  if (!(await page.$('#map canvas.maplibregl-canvas'))) fail('no map canvas in #map');
  const renderer = await page.evaluate(() => {
    const gl = document.querySelector('#map canvas').getContext('webgl2') || document.querySelector('#map canvas').getContext('webgl');
    const ext = gl && gl.getExtension('WEBGL_debug_renderer_info');
    return gl ? `${gl instanceof WebGL2RenderingContext ? 'WebGL2' : 'WebGL1'}${ext ? `, ${gl.getParameter(ext.UNMASKED_RENDERER_WEBGL)}` : ''}` : 'none';
  });
  await waitIn(page, () => window.parq.connected, null, 10_000, 'the Socket.IO connection never opened');
  clean('loading');
  ok(`page loaded with no console errors, no failed requests, nothing from other hosts; map canvas drawn with WebGL (${renderer}), load event fired; Socket.IO connected`);

  // The window: tomorrow 09:00–11:00 in the browser's time zone, set through the picker.
  const win = await page.evaluate(() => {
    const d = new Date();
    d.setDate(d.getDate() + 1);
    if (d.getDay() === 0) d.setDate(d.getDate() + 1); // a street zone closes on Sundays
    d.setHours(9, 0, 0, 0);
    const e = new Date(d.getTime() + 2 * 3600_000);
    const pad = (n) => String(n).padStart(2, '0');
    const input = (x) => `${x.getFullYear()}-${pad(x.getMonth() + 1)}-${pad(x.getDate())}T${pad(x.getHours())}:${pad(x.getMinutes())}`;
    const iso = (x) => x.toISOString().replace(/\.\d{3}Z$/, 'Z');
    return { startInput: input(d), endInput: input(e), start: iso(d), end: iso(e) };
  });
  await page.fill('#end', win.endInput);
  await page.fill('#start', win.startInput);
  await waitIn(page, (w) => window.parq.loadedWindow === w, `${win.start}/${win.end}`, 10_000,
    `the page did not reload the lots for the window ${win.start}/${win.end}`);
  ok(`window picker set to ${win.start} – ${win.end}; lots reloaded for it`);

  // b. Select a demo lot by name; its spots show.
  const lotButton = page.locator('#lots button[data-lot-id]', { hasText: 'Eleftheria' });
  await lotButton.waitFor({ state: 'visible' }).catch(() => fail('no lot named "Eleftheria…" in the side panel'));
  const lotId = await lotButton.getAttribute('data-lot-id');
  await lotButton.click();
  await waitIn(page, () => document.querySelectorAll('#spots [data-spot-id]').length > 0, null, 5_000,
    'the selected lot shows no spots');
  const spots = await page.$$eval('#spots [data-spot-id]', (els) => els.map((e) => ({
    id: e.dataset.spotId, state: e.dataset.state, label: e.querySelector('.label').textContent,
  })));
  const free = spots.filter((s) => s.state === 'free');
  if (free.length < 2) fail(`the lot needs two free spots for this test, it shows ${free.length}`);
  if (spots.some((s) => s.state !== 'free' && s.state !== 'taken')) fail('a spot has a data-state other than free/taken');
  await waitIn(page, (id) => window.parq.subscribed.includes(id), lotId, 10_000,
    `the page never got the subscribe ack for lot ${lotId}`);
  ok(`selected "${await lotButton.locator('.lot-name').innerText()}" (${lotId}): ${spots.length} spots, ${free.length} free; subscribed live`);

  // c. Another driver holds a spot over the REST API: the page turns it taken, live.
  const other = free[free.length - 1];
  const mine = free[0];
  const watcher = io(base, { transports: ['websocket'], reconnection: false });
  const seen = [];
  watcher.on('event', (e) => seen.push({ ...e, receivedAt: Date.now() }));
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Failure('a Node Socket.IO client could not subscribe within 5 s')), 5_000);
    watcher.emit('subscribe', { lot: lotId }, (ack) => {
      clearTimeout(t);
      if (ack && ack.ok) resolve(); else reject(new Failure(`subscribe ack was not ok: ${JSON.stringify(ack)}`));
    });
  });
  const b = await newDriver('other');
  await page.evaluate(() => { window.__sameDocument = true; });
  const heldAt = Date.now();
  const held = await rest('POST', '/api/v1/holds', {
    token: b.token, body: { lot_id: lotId, spot_id: other.id, start: win.start, end: win.end },
  });
  const answeredMs = Date.now() - heldAt;
  if (held.state !== 'held') fail(`the other driver's hold is ${held.state}, not held`);
  try {
    await page.waitForSelector(`#spots [data-spot-id="${other.id}"][data-state="taken"]`, { timeout: LIVE_LIMIT_MS });
  } catch {
    const got = seen.some((e) => e.spot === other.id);
    fail(`spot ${other.label} did not turn taken within ${LIVE_LIMIT_MS} ms of the other driver's hold`
      + (got ? ' (the server did emit the event: a Node client received it)' : ' (a Node Socket.IO client got no event either: the server sent none)'));
  }
  const liveMs = Date.now() - heldAt;
  if (!(await page.evaluate(() => window.__sameDocument === true))) fail('the page reloaded instead of updating live');
  const ev = seen.find((e) => e.spot === other.id);
  watcher.close();
  clean('live update');
  ok(`another driver held ${other.label} over REST; the page showed it taken ${liveMs} ms after the request (the REST answer took ${answeredMs} ms), without reloading`
    + (ev ? ` (event seq ${ev.seq}, kind ${ev.kind}, state ${ev.state}; a Node Socket.IO client got it after ${ev.receivedAt - heldAt} ms)` : ''));

  // d. The page books a different spot end to end: register, hold, pay, pass.
  const email = `page-${randomUUID().slice(0, 8)}@example.com`;
  await page.fill('#email', email);
  await page.fill('#password', `pw-${randomUUID()}`);
  await page.click('#register');
  await page.waitForSelector('#signed-in:not([hidden])', { timeout: 10_000 })
    .catch(() => fail('registering and signing in through the form did not finish'));
  await waitIn(page, (id) => window.parq.connected && window.parq.subscribed.includes(id), lotId, 10_000,
    'after signing in, the page did not resubscribe to the lot');
  ok(`registered and signed in as ${email} through the form; socket reconnected with the token`);

  await page.click(`#spots [data-spot-id="${mine.id}"][data-state="free"]`);
  await page.click('#hold-btn');
  const card = page.locator('#booking .booking[data-state="held"]');
  await card.waitFor().catch(() => fail('holding through the page did not show a held reservation'));
  const heldText = (await card.innerText()).replace(/\s+/g, ' ');
  if (!/€|EUR/.test(heldText)) fail(`the held reservation shows no price: "${heldText}"`);
  if (!(await card.locator('[data-deadline]').count())) fail('the held reservation shows no countdown');
  const resId = await card.getAttribute('data-reservation-id');
  if ((await page.getAttribute(`#spots [data-spot-id="${mine.id}"]`, 'data-state')) !== 'taken') {
    fail(`the page's own hold did not mark ${mine.label} taken`);
  }
  ok(`held ${mine.label} through the page: "${heldText.trim()}"`);

  await page.click('#pay-btn');
  await page.waitForSelector('#pass svg', { timeout: 15_000 })
    .catch(async () => fail(`no QR pass in #pass after paying; the booking says: "${(await page.textContent('#booking')).replace(/\s+/g, ' ').trim()}"`));
  await page.waitForSelector('#booking .booking[data-state="confirmed"]', { timeout: 5_000 })
    .catch(() => fail('the booking card does not say confirmed'));
  const passText = await page.textContent('#pass-text code');
  if (!passText || passText.length < 20) fail('the pass text is missing under the QR code');
  const row = page.locator(`#reservations li[data-reservation-id="${resId}"]`);
  await row.waitFor().catch(() => fail(`"My reservations" does not list ${resId}`));
  await page.waitForSelector(`#reservations li[data-reservation-id="${resId}"][data-state="confirmed"]`, { timeout: 5_000 })
    .catch(() => fail(`"My reservations" lists ${resId} but not as confirmed`));
  const rowText = (await row.innerText()).replace(/\s+/g, ' ').trim();
  if (!rowText.includes(mine.label)) fail(`"My reservations" row does not name the spot ${mine.label}: "${rowText}"`);
  const token = await page.evaluate(() => sessionStorage.getItem('parq.token'));
  const server = await rest('GET', `/api/v1/reservations/${resId}`, { token });
  if (server.state !== 'confirmed') fail(`the server says reservation ${resId} is ${server.state}`);
  const own = await waitIn(page, (id) => {
    const evs = window.parq.reservationEvents.filter((e) => e.reservation === id);
    return evs.some((e) => e.state === 'confirmed') && evs.map((e) => `${e.kind}→${e.state}`);
  }, resId, LIVE_LIMIT_MS, `the page's socket got no \`reservation\` event saying ${resId} is confirmed`);
  clean('booking');
  ok(`the signed-in socket received the driver's own \`reservation\` events: ${own.join(', ')}`);
  ok(`paid with the test gateway: #pass shows the QR code SVG and the pass text (${passText.length} chars); "My reservations" lists "${rowText}"; the server agrees it is confirmed`);

  // e. The screenshot.
  await mkdir(path.dirname(screenshot), { recursive: true });
  await page.locator('#booking').scrollIntoViewIfNeeded();
  await page.screenshot({ path: screenshot, fullPage: true });
  ok(`screenshot saved to ${screenshot}`);
  clean('the end');
  await context.close();
}

const guard = setTimeout(() => {
  console.error(`FAIL - the test did not finish within ${TOTAL_LIMIT_MS / 1000} s`);
  process.exit(1);
}, TOTAL_LIMIT_MS);

let browser;
let code = 0;
try {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-angle=swiftshader', '--enable-unsafe-swiftshader'],
  }).catch((e) => fail(`could not start ${CHROMIUM} (install it with: apt-get install -y chromium): ${e.message.split('\n')[0]}`));
  await run(browser);
  console.log(`map: ${passed} passed, 0 failed`);
} catch (e) {
  console.error(`FAIL - ${e instanceof Failure ? e.message : e.stack}`);
  console.log(`map: ${passed} passed, 1 failed`);
  code = 1;
} finally {
  clearTimeout(guard);
  if (browser) await browser.close().catch(() => {});
}
process.exit(code);
