// ParQ live map: find a car park, watch its spots change live, hold one, pay, get the pass.
// Plain ES2020 with no build step; the page's only libraries are the vendored MapLibre GL
// (window.maplibregl) and the Socket.IO client (window.io), both served by `parq serve`.
'use strict';

const GRANULARITY_MIN = 15; // the demo lots' granularity; windows snap to it
const SEARCH_RADIUS_M = 100000; // the API's largest radius: the whole demo city
const SPOT_SPACING_M = 6; // spots have no coordinates: they are drawn in a grid this far apart
const LIVE = new Set(['held', 'pending_payment', 'confirmed', 'checked_in']);
const CANCELLABLE = new Set(['held', 'pending_payment', 'confirmed']);
const HAS_PASS = new Set(['confirmed', 'checked_in']);
const COLOR = {
  free: '#16a34a', few: '#f59e0b', full: '#dc2626', closed: '#94a3b8',
  taken: '#dc2626', picked: '#2563eb', public: '#0284c7',
};
const STATE_TEXT = {
  held: 'Held', pending_payment: 'Awaiting payment', confirmed: 'Confirmed', checked_in: 'Checked in',
  completed: 'Completed', expired: 'Expired', cancelled: 'Cancelled', no_show: 'No-show',
};

const state = {
  config: null,
  token: sessionStorage.getItem('parq.token'),
  email: sessionStorage.getItem('parq.email'),
  window: null, // { start: Date, end: Date }
  gen: 0, // bumped when the window changes, so late answers for an old window are dropped
  lots: new Map(), // lot id -> { lot, fits, inSearch, free, total, price, spots: [{ spot, free }] }
  names: { lots: new Map(), spots: new Map() }, // ids -> names, also for lots not on the map
  seq: new Map(), // lot id -> last event sequence number seen
  subscribed: new Set(), // lots whose subscription the server acknowledged on this connection
  selectedLot: null,
  selectedSpot: null,
  booking: null, // { res, status, note } for the reservation being booked or shown
  reservations: new Map(), // id -> reservation view
  map: null,
  mapLoaded: false,
  webgl: null,
  socket: null,
  markers: new Map(), // lot id -> name label on the map
  spotMarkers: [], // labels of the selected lot's spots
  holding: null, // the spot of a hold request in flight
};
// For tests and the curious.
window.parq = {
  state,
  get mapLoaded() { return state.mapLoaded; },
  get webgl() { return state.webgl; },
  get subscribed() { return [...state.subscribed]; },
  get connected() { return Boolean(state.socket && state.socket.connected); },
  loadedWindow: null, // "start/end" of the last completed refresh of the lots
  reservationEvents: [], // the signed-in driver's `reservation` events, as received
};

// ---------------------------------------------------------------- small helpers

const $ = (sel) => document.querySelector(sel);

/** Makes an element: h('button', { class: 'x', onclick: f, dataset: { id } }, 'text', child). */
function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v == null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : v);
  }
  node.append(...children.flat().filter((c) => c != null && c !== false));
  return node;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pad = (n) => String(n).padStart(2, '0');
const toInput = (d) =>
  `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
const iso = (d) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');
const snap = (d) => {
  const step = GRANULARITY_MIN * 60000;
  return new Date(Math.round(d.getTime() / step) * step);
};
const overlaps = (a, b) => new Date(a.start) < b.end && b.start < new Date(a.end);
const byLabel = (a, b) => a.spot.label.localeCompare(b.spot.label, undefined, { numeric: true });

function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  // Outside a secure context (plain http on a LAN address) randomUUID is missing.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((v) => v.toString(16).padStart(2, '0')).join('');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'short', day: 'numeric', month: 'short' });
const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
function fmtWindow(w) {
  const s = new Date(w.start);
  const e = new Date(w.end);
  const sameDay = s.toDateString() === e.toDateString();
  return `${dayFmt.format(s)}, ${timeFmt.format(s)} – ${sameDay ? '' : `${dayFmt.format(e)}, `}${timeFmt.format(e)}`;
}
function fmtMoney(m) {
  if (!m) return '';
  try {
    const f = new Intl.NumberFormat(undefined, { style: 'currency', currency: m.currency });
    return f.format(m.minor / 10 ** f.resolvedOptions().maximumFractionDigits);
  } catch {
    return `${(m.minor / 100).toFixed(2)} ${m.currency}`;
  }
}
function fmtCountdown(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  return `${Math.floor(s / 60)}:${pad(s % 60)}`;
}
function debounce(fn, ms) {
  let t;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}

// ---------------------------------------------------------------- the API

/** An application/problem+json error (or one made up for a network failure). */
class Problem extends Error {
  constructor(p) {
    super(p.detail || p.title || 'Something went wrong');
    this.title = p.title || 'Something went wrong';
    this.detail = p.detail || '';
    this.status = p.status || 0;
    this.code = p.code || '';
  }
}

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Calls the API. Unsafe methods carry an Idempotency-Key (the given one, so a retried action
 * reuses its key); network failures, 429 and 503 are retried with the same key.
 */
async function api(method, path, { body, key, text = false } = {}) {
  const headers = { Accept: text ? 'image/svg+xml, application/problem+json' : 'application/json' };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (UNSAFE.has(method)) headers['Idempotency-Key'] = key || newKey();
  const init = { method, headers, body: body === undefined ? undefined : JSON.stringify(body) };
  for (let attempt = 1; ; attempt++) {
    let res;
    try {
      res = await fetch(path, init);
    } catch {
      if (attempt < 3) {
        await sleep(400 * attempt);
        continue;
      }
      throw new Problem({ title: 'No connection', detail: 'The server could not be reached. Check your connection and try again.' });
    }
    if (res.ok) return res.status === 204 ? null : text ? res.text() : res.json();
    let p = {};
    if ((res.headers.get('content-type') || '').includes('json')) p = await res.json().catch(() => ({}));
    const problem = new Problem({
      title: p.title || `The server answered ${res.status}`,
      detail: p.detail || (res.status >= 500 ? 'Please try again in a moment.' : ''),
      status: res.status,
      code: p.code,
    });
    const retryable = res.status === 429 || res.status === 503 || p.code === 'idempotency_in_progress';
    if (retryable && attempt < 3) {
      const after = Number(res.headers.get('retry-after'));
      await sleep(Math.min(5000, after > 0 ? after * 1000 : 500 * attempt));
      continue;
    }
    if (res.status === 401 && headers.Authorization) {
      endSession();
      problem.title = 'Please sign in again';
      problem.detail = 'Your session has ended.';
    }
    throw problem;
  }
}

// One key per user action; a retry of the same action (after a network failure or a 5xx)
// reuses it, so the server answers it as the same request.
const actionKeys = new Map();
async function act(action, method, path, body) {
  const key = actionKeys.get(action) || newKey();
  actionKeys.set(action, key);
  try {
    const out = await api(method, path, { body, key });
    actionKeys.delete(action);
    return out;
  } catch (e) {
    const transient = !e.status || e.status >= 500 || e.status === 429 || e.code === 'idempotency_in_progress';
    if (!transient) actionKeys.delete(action);
    throw e;
  }
}

// ---------------------------------------------------------------- messages

let toastTimer;
function toast(title, detail = '', kind = 'error') {
  const t = $('#toast');
  t.replaceChildren(h('strong', {}, title), ...(detail ? [h('span', {}, detail)] : []));
  t.dataset.kind = kind;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, kind === 'error' ? 8000 : 4000);
}
const showProblem = (e) => toast(e.title || 'Something went wrong', e.detail || (e.title ? '' : String(e.message || '')));

// ---------------------------------------------------------------- the window

function initWindow() {
  const start = new Date();
  start.setMinutes(0, 0, 0);
  start.setHours(start.getHours() + 1);
  const end = new Date(start.getTime() + 2 * 3600000);
  $('#start').value = toInput(start);
  $('#end').value = toInput(end);
  state.window = { start, end };
  showWindowNote();
  const changed = debounce(onWindowChange, 350);
  for (const id of ['#start', '#end']) $(id).addEventListener('change', changed);
}

function readWindow() {
  const s = $('#start').value;
  const e = $('#end').value;
  if (!s || !e) return { error: 'Pick a start and an end.' };
  const start = snap(new Date(s));
  const end = snap(new Date(e));
  if (Number.isNaN(start.getTime()) || Number.isNaN(end.getTime())) return { error: 'Those are not valid dates.' };
  if (end <= start) return { error: 'The end must be after the start.' };
  return { start, end };
}

function showWindowNote(error) {
  const note = $('#window-note');
  note.classList.toggle('error', Boolean(error));
  if (error) {
    note.textContent = error;
    return;
  }
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const hours = (state.window.end - state.window.start) / 3600000;
  note.textContent = `${hours % 1 ? hours.toFixed(2) : hours} h, in your time zone (${zone}). Times snap to ${GRANULARITY_MIN} minutes.`;
}

function onWindowChange() {
  const w = readWindow();
  if (w.error) {
    showWindowNote(w.error);
    return;
  }
  $('#start').value = toInput(w.start);
  $('#end').value = toInput(w.end);
  state.window = w;
  state.gen += 1;
  state.selectedSpot = null;
  showWindowNote();
  refreshLots();
}

// ---------------------------------------------------------------- lots and spots

function windowQuery() {
  return `start=${encodeURIComponent(iso(state.window.start))}&end=${encodeURIComponent(iso(state.window.end))}`;
}

/** Searches the whole area; lots already known but missing from the results (no free spot,
 * or the window does not fit their hours) keep their place and get their availability. */
async function refreshLots() {
  const gen = state.gen;
  const [lon, lat] = state.config.center;
  const q = new URLSearchParams({ lat, lon, radius_m: SEARCH_RADIUS_M });
  let results;
  try {
    ({ results } = await api('GET', `/api/v1/lots?${q}&${windowQuery()}`));
  } catch (e) {
    showProblem(e);
    return;
  }
  if (gen !== state.gen) return;
  const found = new Set(results.map((m) => m.lot.id));
  for (const m of results) {
    const entry = state.lots.get(m.lot.id) || { spots: [], total: 0 };
    Object.assign(entry, { lot: m.lot, inSearch: true, free: m.free, price: m.price });
    state.lots.set(m.lot.id, entry);
    state.names.lots.set(m.lot.id, m.lot.name);
  }
  for (const [id, entry] of state.lots) if (!found.has(id)) entry.inSearch = false;
  await Promise.all([...state.lots.keys()].map((id) => refreshAvailability(id, gen)));
  if (gen !== state.gen) return;
  for (const entry of state.lots.values()) {
    // Missing from the search with spots free: the window breaks the lot's rules.
    entry.fits = entry.inSearch || entry.free === 0;
  }
  subscribeAll();
  render();
  if (!state.fitted && state.mapLoaded) fitLots();
  window.parq.loadedWindow = `${iso(state.window.start)}/${iso(state.window.end)}`;
}

async function refreshAvailability(id, gen = state.gen, tries = 0) {
  const entry = state.lots.get(id);
  if (!entry) return;
  const seqBefore = state.seq.get(id);
  try {
    const a = await api('GET', `/api/v1/lots/${id}/availability?${windowQuery()}`);
    if (gen !== state.gen) return;
    if (state.seq.get(id) !== seqBefore && tries < 3) {
      // An event arrived while we were asking: this answer may predate it. Ask again.
      await refreshAvailability(id, gen, tries + 1);
      return;
    }
    entry.spots = a.spots.slice().sort(byLabel);
    entry.total = a.spots.length;
    entry.free = a.free;
    entry.price = a.price;
    for (const s of a.spots) state.names.spots.set(s.spot.id, s.spot.label);
  } catch (e) {
    if (e.status !== 404) showProblem(e);
  }
}

const refreshTimers = new Map();
function scheduleRefresh(id) {
  clearTimeout(refreshTimers.get(id));
  refreshTimers.set(id, setTimeout(async () => {
    refreshTimers.delete(id);
    await refreshAvailability(id);
    render();
  }, 300));
}

function lotStatus(e) {
  if (!e.total || !e.fits) return 'closed';
  if (e.free === 0) return 'full';
  return e.free / e.total < 0.34 ? 'few' : 'free';
}

function selectLot(id) {
  if (!state.lots.has(id)) return;
  if (state.selectedLot !== id) state.selectedSpot = null;
  state.selectedLot = id;
  render();
  const { lot } = state.lots.get(id);
  if (state.map) state.map.flyTo({ center: [lot.location.lon, lot.location.lat], zoom: 19.5, speed: 2 });
  if (window.matchMedia('(max-width: 800px)').matches) $('#lot').scrollIntoView({ behavior: 'smooth' });
}

function pickSpot(id) {
  const entry = state.lots.get(state.selectedLot);
  const s = entry && entry.spots.find((x) => x.spot.id === id);
  if (!s || !s.free) return;
  state.selectedSpot = id;
  render();
  $('#booking').scrollIntoView({ behavior: 'smooth', block: 'nearest' });
}

function markTaken(lotId, spotId) {
  const entry = state.lots.get(lotId);
  const s = entry && entry.spots.find((x) => x.spot.id === spotId);
  if (!s || !s.free) return;
  s.free = false;
  entry.free = Math.max(0, entry.free - 1);
  if (state.selectedSpot === spotId && state.holding !== spotId) {
    state.selectedSpot = null;
    toast('That spot was just taken', 'Someone else got it first; pick another one.', 'info');
  }
}

// ---------------------------------------------------------------- live updates

function setLive(mode, text) {
  $('#live').dataset.live = mode;
  $('#live-text').textContent = text;
}

function connectSocket() {
  if (state.socket) {
    state.socket.removeAllListeners();
    state.socket.disconnect();
  }
  state.subscribed.clear();
  if (typeof window.io !== 'function') {
    setLive('off', 'Live updates unavailable');
    return;
  }
  const socket = state.token ? window.io({ auth: { token: state.token } }) : window.io();
  state.socket = socket;
  setLive('wait', 'Connecting…');
  socket.on('connect', () => {
    setLive('on', 'Live');
    connection += 1;
    state.subscribed.clear();
    subscribing.clear();
    subscribeAll();
  });
  socket.on('disconnect', (reason) => {
    connection += 1;
    state.subscribed.clear();
    subscribing.clear();
    setLive('wait', 'Reconnecting…');
    if (reason === 'io server disconnect') socket.connect(); // the client does not retry these by itself
  });
  socket.on('connect_error', () => {
    if (socket.active) {
      setLive('wait', 'Reconnecting…');
    } else if (state.token) {
      // The server refused the token: check the session, then carry on anonymously.
      api('GET', '/api/v1/me').catch(() => {}).finally(() => { if (!state.token) connectSocket(); });
      setLive('off', 'Live updates refused');
    } else {
      setLive('off', 'Live updates refused');
    }
  });
  socket.on('event', onLotEvent);
  socket.on('reservation', onReservationEvent);
}

function subscribeAll() {
  for (const id of state.lots.keys()) subscribe(id);
}

const subscribing = new Set(); // lots whose subscribe awaits its ack on this connection
let connection = 0; // bumped on every connect and disconnect: older acks are ignored
function subscribe(lot) {
  const socket = state.socket;
  if (!socket || !socket.connected || state.subscribed.has(lot) || subscribing.has(lot)) return;
  subscribing.add(lot);
  const conn = connection;
  const after = state.seq.get(lot);
  const payload = after == null ? { lot } : { lot, after };
  socket.timeout(10000).emit('subscribe', payload, (err, ack) => {
    if (socket !== state.socket || conn !== connection) return;
    subscribing.delete(lot);
    if (err) {
      setTimeout(() => subscribe(lot), 1000); // no answer: try again
      return;
    }
    if (!ack || !ack.ok) {
      const p = (ack && ack.error) || {};
      console.warn('subscribe refused', lot, p);
      toast(p.title || 'Live updates refused', p.detail || '');
      return;
    }
    state.subscribed.add(lot);
    const seq = ack.seq || 0;
    // Behind what we saw: the server started afresh (a demo on memory restarted).
    const restarted = after != null && seq < after;
    state.seq.set(lot, restarted ? seq : Math.max(state.seq.get(lot) || 0, seq));
    // A first subscription replays nothing, and after a long absence the server asks for a
    // resync: read the lot again, so that no change before the subscription is missed.
    if (after == null || ack.resync || restarted) scheduleRefresh(lot);
  });
}

function onLotEvent(ev) {
  const last = state.seq.get(ev.lot) || 0;
  if (ev.seq <= last) return; // already seen (a replay after reconnecting)
  if (last && ev.seq > last + 1) {
    // A gap (our buffer overflowed): subscribe again from the last event seen; the server
    // replays what is missing, this one included.
    state.subscribed.delete(ev.lot);
    subscribe(ev.lot);
    return;
  }
  state.seq.set(ev.lot, ev.seq);
  if (!state.lots.has(ev.lot) || !overlaps(ev.window, state.window)) return;
  if (LIVE.has(ev.state)) {
    markTaken(ev.lot, ev.spot);
    render();
  } else {
    scheduleRefresh(ev.lot);
  }
}

const confirmWaiters = new Set();
function onReservationEvent(ev) {
  window.parq.reservationEvents.push({ reservation: ev.reservation, seq: ev.seq, kind: ev.kind, state: ev.state });
  if (window.parq.reservationEvents.length > 50) window.parq.reservationEvents.shift();
  for (const w of confirmWaiters) w(ev.reservation, ev.state);
  const known = state.reservations.get(ev.reservation);
  if (known) {
    known.state = ev.state;
    known.window = ev.window;
    renderReservations();
  } else {
    loadReservationsSoon();
  }
  const b = state.booking;
  if (b && b.res.id === ev.reservation) {
    b.res.state = ev.state;
    if (!LIVE.has(ev.state) && b.status !== 'cancelled') b.status = ev.state;
    renderBooking();
    if (HAS_PASS.has(ev.state) && b.status === 'held') {
      // Paid elsewhere (another tab, the app): show the pass here too.
      b.status = 'confirmed';
      renderBooking();
      showPass(b.res.id);
    }
  }
}

// ---------------------------------------------------------------- the map

function baseStyle(tileUrl) {
  const style = {
    version: 8,
    sources: {},
    layers: [{ id: 'background', type: 'background', paint: { 'background-color': '#e9eef1' } }],
  };
  if (tileUrl) {
    style.sources.basemap = { type: 'raster', tiles: [tileUrl], tileSize: 256, maxzoom: 19 };
    style.layers.push({ id: 'basemap', type: 'raster', source: 'basemap' });
  }
  return style;
}

function showMapNote(text) {
  const note = $('#map-note');
  note.textContent = text;
  note.hidden = false;
  $('#map').hidden = true;
  document.body.classList.add('no-map');
}

function initMap() {
  const c = state.config;
  if (!window.maplibregl) {
    state.webgl = false;
    showMapNote('The map could not be loaded. Pick a car park from the list.');
    return;
  }
  try {
    state.map = new window.maplibregl.Map({
      container: 'map',
      style: c.style_url || baseStyle(c.tile_url),
      center: c.center,
      zoom: c.zoom,
      attributionControl: { compact: true },
      dragRotate: false,
      pitchWithRotate: false,
    });
  } catch (e) {
    state.webgl = false;
    state.map = null;
    showMapNote('This browser cannot draw the map (WebGL is not available). Everything else works: pick a car park from the list.');
    return;
  }
  state.webgl = true;
  const map = state.map;
  map.addControl(new window.maplibregl.NavigationControl({ showCompass: false }), 'top-right');
  // A style or tile problem: logged (the page itself keeps working).
  map.on('error', (e) => console.error('map:', e && e.error ? e.error.message : e));
  map.on('load', () => {
    addLayers(c);
    state.mapLoaded = true;
    renderMap();
    if (state.lots.size) fitLots();
    loadPublicParking();
  });
}

function gridLines(center) {
  // A faint graticule, so that the plain style has something to pan over.
  const features = [];
  const [lon0, lat0] = center.map((v) => Math.round(v * 10) / 10);
  for (let i = -80; i <= 80; i++) {
    const d = i / 50;
    features.push({ type: 'Feature', properties: { major: i % 5 === 0 }, geometry: { type: 'LineString', coordinates: [[lon0 - 1.6, lat0 + d], [lon0 + 1.6, lat0 + d]] } });
    features.push({ type: 'Feature', properties: { major: i % 5 === 0 }, geometry: { type: 'LineString', coordinates: [[lon0 + d, lat0 - 1.6], [lon0 + d, lat0 + 1.6]] } });
  }
  return { type: 'FeatureCollection', features };
}

const EMPTY = { type: 'FeatureCollection', features: [] };
const statusColor = ['match', ['get', 'status'], 'free', COLOR.free, 'few', COLOR.few, 'full', COLOR.full, COLOR.closed];

function addLayers(c) {
  const map = state.map;
  if (!c.style_url && !c.tile_url) {
    map.addSource('grid', { type: 'geojson', data: gridLines(c.center) });
    map.addLayer({
      id: 'grid', type: 'line', source: 'grid',
      paint: {
        'line-color': '#94a3b8', 'line-width': 1,
        'line-opacity': ['interpolate', ['linear'], ['zoom'], 9, ['case', ['get', 'major'], 0.3, 0], 11, ['case', ['get', 'major'], 0.35, 0.15]],
      },
    });
  }
  map.addSource('public', { type: 'geojson', data: EMPTY });
  map.addSource('lots', { type: 'geojson', data: EMPTY });
  map.addSource('spots', { type: 'geojson', data: EMPTY });
  map.addLayer({
    id: 'public', type: 'circle', source: 'public',
    paint: {
      'circle-color': COLOR.public, 'circle-opacity': 0.85, 'circle-stroke-color': '#fff', 'circle-stroke-width': 1.5,
      'circle-radius': ['interpolate', ['linear'], ['zoom'], 8, 3, 14, 6, 18, 9],
    },
  });
  const fade = ['interpolate', ['linear'], ['zoom'], 16.5, 1, 17.5, 0];
  map.addLayer({
    id: 'lots-halo', type: 'circle', source: 'lots',
    paint: {
      'circle-color': statusColor, 'circle-opacity': ['interpolate', ['linear'], ['zoom'], 16.5, 0.2, 17.5, 0],
      'circle-radius': ['interpolate', ['linear'], ['zoom'], 8, 12, 14, 24, 18, 44],
    },
  });
  map.addLayer({
    id: 'lots', type: 'circle', source: 'lots',
    paint: {
      'circle-color': statusColor, 'circle-opacity': fade, 'circle-stroke-opacity': fade,
      'circle-radius': ['interpolate', ['linear'], ['zoom'], 8, 6, 14, 10, 18, 16],
      'circle-stroke-color': ['case', ['get', 'selected'], '#0f172a', '#ffffff'],
      'circle-stroke-width': ['case', ['get', 'selected'], 3, 2],
    },
  });
  map.addLayer({
    id: 'spots', type: 'circle', source: 'spots', minzoom: 15,
    paint: {
      'circle-color': ['case', ['get', 'picked'], COLOR.picked, ['get', 'free'], COLOR.free, COLOR.taken],
      // About a third of the spacing between spots, whatever the zoom.
      'circle-radius': ['interpolate', ['exponential', 2], ['zoom'], 15, 1, 22, 128],
      'circle-stroke-color': '#ffffff',
      'circle-stroke-width': ['interpolate', ['linear'], ['zoom'], 15, 0, 18, 1.5],
    },
  });
  const zoomClass = () => {
    map.getContainer().classList.toggle('zoomed-in', map.getZoom() >= 18.8);
    placeSelectedLabel();
  };
  map.on('zoom', zoomClass);
  map.on('moveend', declutter);
  zoomClass();
  const pointer = (on) => () => { map.getCanvas().style.cursor = on ? 'pointer' : ''; };
  for (const layer of ['lots', 'spots', 'public']) {
    map.on('mouseenter', layer, pointer(true));
    map.on('mouseleave', layer, pointer(false));
  }
  map.on('click', 'lots', (e) => selectLot(e.features[0].properties.id));
  map.on('click', 'spots', (e) => pickSpot(e.features[0].properties.id));
  map.on('click', 'public', (e) => {
    const f = e.features[0];
    const p = f.properties;
    const body = h('div', { class: 'popup' },
      h('strong', {}, p.name || 'Public parking'),
      p.capacity != null && p.capacity !== 'null' ? h('div', {}, `${p.capacity} places`) : null,
      p.notes && p.notes !== 'null' ? h('div', { class: 'muted' }, p.notes) : null);
    new window.maplibregl.Popup({ offset: 10 }).setLngLat(f.geometry.coordinates).setDOMContent(body).addTo(map);
  });
}

/** Once, after the first load: when the configured view leaves some lots out (a phone's narrow
 * screen), zoom out just enough to show them all. */
function fitLots() {
  state.fitted = true;
  const map = state.map;
  const lots = [...state.lots.values()].filter((e) => e.lot).map((e) => [e.lot.location.lon, e.lot.location.lat]);
  const { width, height } = map.getContainer().getBoundingClientRect();
  const inset = 60; // room for a label
  const inView = (p) => {
    const q = map.project(p);
    return q.x > inset && q.x < width - inset && q.y > inset && q.y < height - inset;
  };
  if (!lots.length || lots.every(inView)) return;
  const bounds = lots.reduce((b, p) => b.extend(p), new window.maplibregl.LngLatBounds(lots[0], lots[0]));
  map.fitBounds(bounds, { padding: inset, maxZoom: state.config.zoom, duration: 0 });
}

/** Where spot `i` of `n` is drawn: a grid centred on the lot, SPOT_SPACING_M apart. */
function spotPosition(lot, i, n) {
  const cols = Math.ceil(Math.sqrt(n));
  const rows = Math.ceil(n / cols);
  const dx = ((i % cols) - (cols - 1) / 2) * SPOT_SPACING_M;
  const dy = ((rows - 1) / 2 - Math.floor(i / cols)) * SPOT_SPACING_M;
  const { lat, lon } = lot.location;
  return [lon + dx / (111320 * Math.cos((lat * Math.PI) / 180)), lat + dy / 110574];
}

function renderMap() {
  if (!state.mapLoaded) return;
  const map = state.map;
  const lots = [...state.lots.values()].filter((e) => e.lot);
  map.getSource('lots').setData({
    type: 'FeatureCollection',
    features: lots.map((e) => ({
      type: 'Feature',
      properties: { id: e.lot.id, status: lotStatus(e), selected: e.lot.id === state.selectedLot },
      geometry: { type: 'Point', coordinates: [e.lot.location.lon, e.lot.location.lat] },
    })),
  });
  const sel = state.lots.get(state.selectedLot);
  map.getSource('spots').setData({
    type: 'FeatureCollection',
    features: sel
      ? sel.spots.map((s, i) => ({
        type: 'Feature',
        properties: { id: s.spot.id, free: s.free, picked: s.spot.id === state.selectedSpot },
        geometry: { type: 'Point', coordinates: spotPosition(sel.lot, i, sel.spots.length) },
      }))
      : [],
  });
  // Names as HTML labels (a symbol layer would need a glyph server).
  for (const e of lots) {
    let m = state.markers.get(e.lot.id);
    if (!m) {
      const el = h('button', { class: 'map-label', type: 'button', onclick: () => selectLot(e.lot.id) });
      m = new window.maplibregl.Marker({ element: el, anchor: 'top', offset: [0, 14] })
        .setLngLat([e.lot.location.lon, e.lot.location.lat]).addTo(map);
      state.markers.set(e.lot.id, m);
    }
    const el = m.getElement();
    el.textContent = `${e.lot.name.split(',')[0]} · ${e.fits ? `${e.free}/${e.total}` : 'closed'}`;
    el.dataset.status = lotStatus(e);
    el.classList.toggle('selected', e.lot.id === state.selectedLot);
  }
  // Spot labels, shown when zoomed in far enough for them to fit in the circles.
  for (const m of state.spotMarkers) m.remove();
  state.spotMarkers = sel
    ? sel.spots.map((s, i) => new window.maplibregl.Marker({
      element: h('div', { class: `spot-label${s.free ? '' : ' taken'}` }, s.spot.label),
    }).setLngLat(spotPosition(sel.lot, i, sel.spots.length)).addTo(map))
    : [];
  placeSelectedLabel();
}

/** Moves the selected lot's name below its grid of spots, so the two do not overlap. */
function placeSelectedLabel() {
  for (const [id, m] of state.markers) {
    const e = state.lots.get(id);
    let below = 14;
    if (id === state.selectedLot && e.spots.length) {
      const rows = Math.ceil(e.spots.length / Math.ceil(Math.sqrt(e.spots.length)));
      const metresPerPx = (40075016.686 * Math.cos((e.lot.location.lat * Math.PI) / 180)) / (512 * 2 ** state.map.getZoom());
      below = Math.max(14, ((rows / 2) * SPOT_SPACING_M) / metresPerPx + 4);
    }
    m.setOffset([0, below]);
  }
  declutter();
}

/** Hides lot names that would overlap one already shown (the selected lot and the lots with
 * most free spots win), so that nearby lots do not pile their labels up when zoomed out. */
function declutter() {
  if (!state.map) return;
  const placed = [];
  const order = [...state.markers.keys()].sort((a, b) =>
    (b === state.selectedLot) - (a === state.selectedLot) || (state.lots.get(b).free || 0) - (state.lots.get(a).free || 0));
  for (const id of order) {
    const m = state.markers.get(id);
    const el = m.getElement();
    const p = state.map.project(m.getLngLat());
    const [ox, oy] = [m.getOffset().x, m.getOffset().y];
    const w = el.offsetWidth || 160;
    const box = { x0: p.x + ox - w / 2 - 4, x1: p.x + ox + w / 2 + 4, y0: p.y + oy - 2, y1: p.y + oy + 24 };
    const hit = placed.some((q) => box.x0 < q.x1 && q.x0 < box.x1 && box.y0 < q.y1 && q.y0 < box.y1);
    el.classList.toggle('hidden-label', hit);
    if (!hit) placed.push(box);
  }
}

async function loadPublicParking() {
  let fc;
  try {
    fc = await api('GET', '/api/v1/public-parking');
  } catch (e) {
    console.warn('public parking:', e.title, e.detail);
    return;
  }
  if (!fc || !Array.isArray(fc.features) || fc.features.length === 0) return;
  state.publicParking = fc;
  if (!state.mapLoaded) return;
  state.map.getSource('public').setData(fc);
  const toggle = $('#public-toggle');
  toggle.hidden = false;
  $('#public-layer').addEventListener('change', (ev) => {
    state.map.setLayoutProperty('public', 'visibility', ev.target.checked ? 'visible' : 'none');
  });
}

// ---------------------------------------------------------------- accounts

function startSession(token, email) {
  state.token = token;
  state.email = email;
  sessionStorage.setItem('parq.token', token);
  sessionStorage.setItem('parq.email', email);
  renderAccount();
  connectSocket();
  loadReservations();
}

function endSession() {
  if (!state.token) return;
  state.token = null;
  state.email = null;
  sessionStorage.removeItem('parq.token');
  sessionStorage.removeItem('parq.email');
  state.reservations.clear();
  renderAccount();
  renderReservations();
  connectSocket();
}

async function login(email, password, action) {
  const body = { email, password };
  const code = $('#totp').value.trim();
  if (!$('#totp-row').hidden && code) body.totp_code = code;
  try {
    const s = await act(action, 'POST', '/api/v1/auth/login', body);
    $('#totp-row').hidden = true;
    $('#totp').value = '';
    $('#password').value = '';
    startSession(s.token, s.user.email);
    toast('Signed in', s.user.email, 'info');
  } catch (e) {
    if (e.code === 'mfa_required') {
      $('#totp-row').hidden = false;
      $('#totp').focus();
      toast('Enter your one-time code', 'This account uses two-factor authentication: type the 6-digit code from your authenticator app.', 'info');
      return;
    }
    throw e;
  }
}

function initAccount() {
  const form = $('#auth-form');
  const busy = (on) => form.querySelectorAll('button').forEach((b) => { b.disabled = on; });
  const creds = () => ({ email: $('#email').value.trim(), password: $('#password').value });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const { email, password } = creds();
    if (!email || !password) return toast('Email and password, please');
    busy(true);
    try {
      await login(email, password, `login:${email}`);
    } catch (e) {
      showProblem(e);
    } finally {
      busy(false);
    }
  });
  $('#register').addEventListener('click', async () => {
    const { email, password } = creds();
    if (!email || !password) return toast('Email and password, please', 'Choose a password of at least 10 characters.');
    busy(true);
    try {
      await act(`register:${email}`, 'POST', '/api/v1/auth/register', { email, password });
      await login(email, password, `login:${email}`);
    } catch (e) {
      showProblem(e);
    } finally {
      busy(false);
    }
  });
  $('#logout').addEventListener('click', async () => {
    try {
      await api('POST', '/api/v1/auth/logout');
    } catch {
      // The session is forgotten here either way.
    }
    endSession();
    state.booking = null;
    render();
  });
}

// ---------------------------------------------------------------- reservations

async function loadReservations() {
  if (!state.token) return;
  try {
    const { reservations } = await api('GET', '/api/v1/reservations');
    state.reservations = new Map(reservations.map((r) => [r.id, r]));
    await Promise.all([...new Set(reservations.map((r) => r.lot_id))].map(learnLot));
  } catch (e) {
    showProblem(e);
  }
  renderReservations();
}
const loadReservationsSoon = debounce(loadReservations, 300);

/** Names of a lot and its spots, for reservations in lots that are not on the map. */
async function learnLot(id) {
  if (state.names.lots.has(id)) return;
  try {
    const { lot, spots } = await api('GET', `/api/v1/lots/${id}`);
    state.names.lots.set(id, lot.name);
    for (const s of spots) state.names.spots.set(s.id, s.label);
  } catch {
    // Shown by id.
  }
}

function spotDesc(spot) {
  const a = spot.attributes || {};
  return [a.size || 'standard', a.ev && 'EV', a.accessible && 'accessible'].filter(Boolean).join(' · ');
}

async function hold() {
  const lotId = state.selectedLot;
  const spotId = state.selectedSpot;
  const w = state.window;
  if (!state.token) {
    toast('Sign in to hold a spot', 'Create an account or sign in below; it takes a moment.', 'info');
    $('#account').scrollIntoView({ behavior: 'smooth' });
    $('#email').focus();
    return;
  }
  const body = { lot_id: lotId, spot_id: spotId, start: iso(w.start), end: iso(w.end) };
  setBusy('#hold-btn', 'Holding…');
  state.holding = spotId; // our own hold's event may arrive before the answer
  try {
    const res = await act(`hold:${lotId}:${spotId}:${body.start}:${body.end}`, 'POST', '/api/v1/holds', body);
    state.booking = { res, status: 'held' };
    state.selectedSpot = null;
    state.reservations.set(res.id, res);
    markTaken(lotId, spotId);
    render();
  } catch (e) {
    showProblem(e);
    if (e.status === 409) scheduleRefresh(lotId);
    render();
  } finally {
    state.holding = null;
  }
}

async function pay() {
  const b = state.booking;
  const id = b.res.id;
  b.status = 'paying';
  b.note = null;
  renderBooking();
  try {
    const c = await act(`checkout:${id}`, 'POST', `/api/v1/reservations/${id}/checkout`);
    b.res = c.reservation;
    let confirmed = false;
    if (c.test_pay_url && c.test_pay_url.startsWith('/')) {
      const paid = await act(`pay:${c.intent.id}`, 'POST', c.test_pay_url);
      if (paid.outcome === 'failed') {
        b.status = 'held';
        b.note = 'The payment was declined. Try again, or release the spot.';
        renderBooking();
        return;
      }
      b.res = paid.reservation;
      confirmed = HAS_PASS.has(paid.reservation.state);
      b.status = 'waiting';
      renderBooking();
      if (!confirmed) b.res = await waitForConfirmed(id, 60000);
    } else if (c.intent.client_secret) {
      b.status = 'stripe';
      renderBooking();
      const left = new Date(b.res.hold_expires_at) - Date.now();
      b.res = await waitForConfirmed(id, Math.max(left, 10000));
    } else {
      throw new Problem({ title: 'Cannot pay here', detail: 'The payment provider needs a step this page does not support.' });
    }
    b.status = 'confirmed';
    renderBooking();
    await showPass(id);
    loadReservations();
  } catch (e) {
    if (b.status === 'cancelled') return; // released meanwhile: nothing more to say
    showProblem(e);
    if (b.status === 'paying' || b.status === 'waiting' || b.status === 'stripe') b.status = 'held';
    renderBooking();
  }
}

/** Resolves with the reservation once confirmed: from the `reservation` socket event, or, when
 * none arrives within 3 s, by polling every second. */
function waitForConfirmed(id, limitMs) {
  return new Promise((resolve, reject) => {
    let poller = null;
    const finish = (err, r) => {
      confirmWaiters.delete(onState);
      clearTimeout(fallback);
      clearTimeout(giveUp);
      clearInterval(poller);
      if (err) reject(err);
      else resolve(r);
    };
    const onState = async (resId, st) => {
      if (resId !== id) return;
      if (HAS_PASS.has(st)) {
        try {
          finish(null, await api('GET', `/api/v1/reservations/${id}`));
        } catch (e) {
          finish(e);
        }
      } else if (!LIVE.has(st)) {
        finish(new Problem({ title: 'Not confirmed', detail: `The reservation is ${STATE_TEXT[st] || st}.` }));
      }
    };
    confirmWaiters.add(onState);
    const fallback = setTimeout(() => {
      poller = setInterval(async () => {
        try {
          const r = await api('GET', `/api/v1/reservations/${id}`);
          if (HAS_PASS.has(r.state)) finish(null, r);
          else if (!LIVE.has(r.state)) onState(id, r.state);
        } catch {
          // Keep polling until the limit.
        }
      }, 1000);
    }, 3000);
    const giveUp = setTimeout(() => finish(new Problem({
      title: 'Still waiting for the payment',
      detail: 'It has not been confirmed yet; “My reservations” will show it when it is.',
    })), limitMs);
  });
}

async function release(id) {
  try {
    const c = await act(`cancel:${id}`, 'POST', `/api/v1/reservations/${id}/cancel`);
    state.reservations.set(id, c.reservation);
    if (state.booking && state.booking.res.id === id) {
      state.booking.res = c.reservation;
      state.booking.status = 'cancelled';
    }
    const refunded = c.refunded && c.refunded.minor ? `${fmtMoney(c.refunded)} goes back to you.` : '';
    toast('Cancelled', refunded, 'info');
    scheduleRefresh(c.reservation.lot_id);
  } catch (e) {
    showProblem(e);
  }
  render();
}

async function showPass(id) {
  const passEl = $('#pass');
  const textEl = $('#pass-text');
  try {
    const [svgText, pass] = await Promise.all([
      api('GET', `/api/v1/reservations/${id}/pass.svg`, { text: true }),
      api('GET', `/api/v1/reservations/${id}/pass`),
    ]);
    const doc = new DOMParser().parseFromString(svgText, 'image/svg+xml');
    const svg = doc.documentElement;
    if (svg.nodeName !== 'svg') throw new Problem({ title: 'The pass could not be shown', detail: 'The QR code was not an image.' });
    svg.querySelectorAll('script, foreignObject').forEach((n) => n.remove());
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', 'QR code of the access pass');
    passEl.dataset.reservationId = id;
    passEl.replaceChildren(document.importNode(svg, true));
    textEl.replaceChildren(
      h('div', { class: 'muted' }, 'Pass text (for gates that read text instead of the QR code):'),
      h('code', {}, pass.text));
    textEl.hidden = false;
  } catch (e) {
    showProblem(e);
  }
}

function clearPass() {
  $('#pass').replaceChildren();
  delete $('#pass').dataset.reservationId;
  $('#pass-text').hidden = true;
}

// ---------------------------------------------------------------- rendering

function render() {
  renderLots();
  renderLot();
  renderBooking();
  renderMap();
  renderReservations();
}

function renderLots() {
  const list = $('#lots');
  const lots = [...state.lots.values()].filter((e) => e.lot);
  $('#lots-count').textContent = lots.length ? `(${lots.length})` : '';
  if (!lots.length) {
    list.replaceChildren(h('li', { class: 'muted' }, 'No car park has a free spot for this window nearby.'));
    return;
  }
  list.replaceChildren(...lots.map((e) => {
    const status = lotStatus(e);
    const avail = !e.fits ? 'Not bookable for this window' : e.free === 0 ? 'Full' : `${e.free} of ${e.total} free`;
    return h('li', {},
      h('button', {
        type: 'button', class: `lot${e.lot.id === state.selectedLot ? ' selected' : ''}`,
        dataset: { lotId: e.lot.id, status }, 'aria-pressed': String(e.lot.id === state.selectedLot),
        onclick: () => selectLot(e.lot.id),
      },
      h('i', { class: `dot ${status}`, 'aria-hidden': 'true' }),
      h('span', { class: 'lot-name' }, e.lot.name),
      h('span', { class: 'lot-meta' }, avail, e.fits && e.price ? ` · ${fmtMoney(e.price)}` : '')));
  }));
}

function renderLot() {
  const section = $('#lot');
  const e = state.lots.get(state.selectedLot);
  section.hidden = !e;
  if (!e) return;
  $('#lot-name').textContent = e.lot.name;
  $('#lot-meta').textContent = e.fits
    ? `${e.free} of ${e.total} spots free · ${fmtMoney(e.price)} for ${fmtWindow(state.window)}`
    : `Not bookable for ${fmtWindow(state.window)}: outside its opening hours or longer than its maximum stay.`;
  $('#spots').replaceChildren(...e.spots.map((s) => {
    const picked = s.spot.id === state.selectedSpot;
    const a = s.spot.attributes || {};
    return h('button', {
      type: 'button', role: 'listitem',
      class: `spot ${s.free ? 'free' : 'taken'}${picked ? ' picked' : ''}`,
      dataset: { spotId: s.spot.id, state: s.free ? 'free' : 'taken' },
      'aria-pressed': String(picked),
      'aria-disabled': String(!s.free),
      title: `${s.spot.label}: ${s.free ? 'free' : 'taken'} · ${spotDesc(s.spot)}`,
      onclick: () => pickSpot(s.spot.id),
    },
    h('span', { class: 'label' }, s.spot.label),
    h('span', { class: 'attrs' },
      a.ev ? h('abbr', { title: 'EV charging' }, '⚡EV') : null,
      a.accessible ? h('abbr', { title: 'Accessible' }, '♿') : null,
      h('span', {}, a.size || 'standard')));
  }));
}

function setBusy(sel, text) {
  const b = $(sel);
  if (b) {
    b.disabled = true;
    b.textContent = text;
  }
}

function renderBooking() {
  const section = $('#booking');
  const body = $('#booking-body');
  const parts = [];
  const entry = state.lots.get(state.selectedLot);
  const spot = entry && entry.spots.find((s) => s.spot.id === state.selectedSpot);
  if (spot) {
    parts.push(h('div', { class: 'pick' },
      h('div', { class: 'big' }, `Spot ${spot.spot.label}`, h('span', { class: 'muted' }, ` · ${spotDesc(spot.spot)}`)),
      h('div', {}, entry.lot.name),
      h('div', {}, `${fmtWindow(state.window)} · `, h('strong', {}, fmtMoney(entry.price))),
      h('div', { class: 'row' },
        h('button', { id: 'hold-btn', type: 'button', class: 'primary', onclick: hold }, state.token ? 'Hold this spot' : 'Sign in to hold'),
        h('button', { type: 'button', onclick: () => { state.selectedSpot = null; render(); } }, 'Clear'))));
  }
  const b = state.booking;
  if (b) parts.push(bookingCard(b));
  section.hidden = parts.length === 0;
  body.replaceChildren(...parts);
  if (!b || b.status !== 'confirmed') clearPass();
}

function bookingCard(b) {
  const r = b.res;
  const lotName = state.names.lots.get(r.lot_id) || 'Car park';
  const spotName = state.names.spots.get(r.spot_id) || r.spot_id.slice(0, 8);
  const rows = [
    h('div', { class: 'big' }, `Spot ${spotName} `, h('span', { class: `badge ${r.state}` }, STATE_TEXT[r.state] || r.state)),
    h('div', {}, lotName),
    h('div', {}, `${fmtWindow(r.window)} · `, h('strong', {}, fmtMoney(r.price))),
  ];
  const held = b.status === 'held' && LIVE.has(r.state) && !HAS_PASS.has(r.state);
  if (held || b.status === 'paying' || b.status === 'waiting' || b.status === 'stripe') {
    rows.push(h('div', { class: 'countdown' }, 'Held for you for ',
      h('strong', { dataset: { deadline: r.hold_expires_at } }, fmtCountdown(new Date(r.hold_expires_at) - Date.now())),
      ' — pay before it runs out.'));
  }
  if (b.note) rows.push(h('div', { class: 'note' }, b.note));
  if (held) {
    rows.push(h('div', { class: 'row' },
      h('button', { id: 'pay-btn', type: 'button', class: 'primary', onclick: pay }, `Pay ${fmtMoney(r.price)}`),
      h('button', { id: 'release-btn', type: 'button', onclick: () => release(r.id) }, 'Release')));
  } else if (b.status === 'paying') {
    rows.push(h('div', { class: 'note busy' }, 'Starting the payment…'));
  } else if (b.status === 'waiting') {
    rows.push(h('div', { class: 'note busy' }, 'Paid. Waiting for the confirmation…'));
  } else if (b.status === 'stripe') {
    rows.push(h('div', { class: 'note' },
      'This server takes cards through Stripe. Card entry needs Stripe.js, which this page does not bundle: ',
      'complete the payment in the ParQ app. This page shows your pass as soon as the payment is confirmed.'));
    rows.push(h('div', { class: 'row' },
      h('button', { id: 'release-btn', type: 'button', onclick: () => release(r.id) }, 'Release')));
  } else if (b.status === 'confirmed') {
    rows.push(h('div', { class: 'note ok' }, 'Confirmed. Show this pass at the gate.'));
  } else if (b.status === 'expired' || r.state === 'expired') {
    rows.push(h('div', { class: 'note' }, 'The hold ran out before it was paid. Pick a spot again.'));
  } else if (b.status === 'cancelled' || r.state === 'cancelled') {
    rows.push(h('div', { class: 'note' }, 'Cancelled.'));
  }
  if (!held && !['paying', 'waiting', 'stripe'].includes(b.status)) {
    rows.push(h('div', { class: 'row' }, h('button', { type: 'button', onclick: () => { state.booking = null; render(); } }, 'Done')));
  }
  return h('div', { class: 'booking', dataset: { reservationId: r.id, state: r.state } }, ...rows);
}

function renderAccount() {
  const signedIn = Boolean(state.token);
  $('#auth-form').hidden = signedIn;
  $('#signed-in').hidden = !signedIn;
  $('#who').textContent = state.email || '';
  $('#mine').hidden = !signedIn;
  const hb = $('#hold-btn');
  if (hb && !hb.disabled) hb.textContent = signedIn ? 'Hold this spot' : 'Sign in to hold';
}

function renderReservations() {
  const list = $('#reservations');
  const rs = [...state.reservations.values()].sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
  if (!rs.length) {
    list.replaceChildren(h('li', { class: 'muted' }, 'None yet.'));
    return;
  }
  list.replaceChildren(...rs.map((r) => h('li', { class: 'reservation', dataset: { reservationId: r.id, state: r.state } },
    h('div', { class: 'res-head' },
      h('strong', {}, `${state.names.lots.get(r.lot_id) || 'Car park'} · ${state.names.spots.get(r.spot_id) || r.spot_id.slice(0, 8)}`),
      h('span', { class: `badge ${r.state}` }, STATE_TEXT[r.state] || r.state)),
    h('div', { class: 'muted' }, `${fmtWindow(r.window)} · ${fmtMoney(r.price)}`),
    h('div', { class: 'row' },
      HAS_PASS.has(r.state) ? h('button', { type: 'button', class: 'small', onclick: () => openPass(r) }, 'Show pass') : null,
      CANCELLABLE.has(r.state) ? h('button', { type: 'button', class: 'small danger', onclick: () => release(r.id) }, 'Cancel') : null))));
}

async function openPass(r) {
  state.booking = { res: r, status: 'confirmed' };
  renderBooking();
  await showPass(r.id);
  $('#booking').scrollIntoView({ behavior: 'smooth' });
}

function tick() {
  for (const el of document.querySelectorAll('[data-deadline]')) {
    const left = new Date(el.dataset.deadline) - Date.now();
    el.textContent = fmtCountdown(left);
    const b = state.booking;
    if (left <= 0 && b && b.status === 'held' && b.res.hold_expires_at === el.dataset.deadline) {
      b.status = 'expired';
      b.res.state = 'expired';
      scheduleRefresh(b.res.lot_id);
      renderBooking();
    }
  }
}

// ---------------------------------------------------------------- start

async function main() {
  initWindow();
  initAccount();
  renderAccount();
  setInterval(tick, 1000);
  try {
    state.config = await api('GET', '/api/v1/map/config');
  } catch (e) {
    showProblem(e);
    state.config = { style_url: null, tile_url: null, center: [33.2, 34.9], zoom: 8 };
  }
  initMap();
  connectSocket();
  if (state.token) {
    api('GET', '/api/v1/me').then(() => loadReservations()).catch(() => {});
  }
  await refreshLots();
  if (!state.map) loadPublicParkingList();
}

/** Without a map, public parking is still listed (under the car parks). */
async function loadPublicParkingList() {
  let fc;
  try {
    fc = await api('GET', '/api/v1/public-parking');
  } catch {
    return;
  }
  if (!fc || !Array.isArray(fc.features) || !fc.features.length) return;
  $('#public-list').replaceChildren(...fc.features.map((f) => h('li', {},
    h('i', { class: 'swatch public', 'aria-hidden': 'true' }),
    h('span', {}, h('strong', {}, f.properties.name || 'Public parking'),
      f.properties.capacity != null ? ` · ${f.properties.capacity} places` : '',
      f.properties.notes ? h('span', { class: 'muted' }, ` · ${f.properties.notes}`) : null))));
  $('#public').hidden = false;
}

main();
