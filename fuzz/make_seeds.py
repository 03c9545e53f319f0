#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/: small, real inputs for each target.

Run from anywhere: python3 fuzz/make_seeds.py. The files are committed; rerun after changing
a target's input format.
"""
import hashlib, hmac, json, os, struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
SECRET = b"whsec_fuzz"   # fuzz_targets/webhook.rs
NOW = 1_800_000_000      # fuzz_targets/webhook.rs
RES = "0193a1b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b"
LOT = "0193a1b2-0000-7e4f-8a9b-0c1d2e3f4a5b"
SPOT = "0193a1b2-1111-7e4f-8a9b-0c1d2e3f4a5b"


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def js(v):
    return json.dumps(v, separators=(",", ":")).encode()


def header(body, t):
    sig = hmac.new(SECRET, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={sig}"


# pass_decode: mode byte 0 raw text, 1 a genuine pass XORed with the rest, 2 a revocation delta.
write("pass_decode", "genuine_pass", b"\x01\x00")
write("pass_decode", "genuine_pass_long_tail", b"\x01" + bytes(120) + b"\x07")
write("pass_decode", "flipped_signature_byte", b"\x01" + bytes(40) + b"\x01")
write("pass_decode", "base45_text", b"\x00QED8WEX0")
write("pass_decode", "base45_odd", b"\x00BB8 %69VD92EX0")
write("pass_decode", "not_base45", b"\x00hello, gate!")
rev = {"version": 1, "reservation": RES, "reason": "cancelled", "at": "2030-03-17T17:46:40Z"}
write("pass_decode", "delta_empty", b"\x02" + js({"from": 0, "to": 0, "revocations": []}))
write("pass_decode", "delta_one", b"\x02" + js({"from": 0, "to": 1, "revocations": [rev]}))
write("pass_decode", "delta_replaced_gap", b"\x02" + js({"from": 3, "to": 5, "revocations": [
    dict(rev, version=5, reason="replaced")]}))

# webhook: Stripe events (as Stripe sends them, trimmed) and test gateway envelopes.
pi = {"id": "pi_3Pq", "object": "payment_intent", "amount": 800, "currency": "eur",
      "capture_method": "manual", "status": "requires_capture", "metadata": {"reservation": RES}}
def event(kind, obj):
    return js({"id": "evt_1Pq", "object": "event", "api_version": "2025-03-31.basil",
               "created": NOW, "type": kind, "data": {"object": obj}, "livemode": False})
stripe = {
    "stripe_capturable": event("payment_intent.amount_capturable_updated", pi),
    "stripe_succeeded": event("payment_intent.succeeded", dict(pi, status="succeeded")),
    "stripe_failed": event("payment_intent.payment_failed", dict(pi, status="requires_payment_method",
        last_payment_error={"code": "card_declined", "decline_code": "insufficient_funds", "message": "Your card has insufficient funds."})),
    "stripe_canceled": event("payment_intent.canceled", dict(pi, status="canceled")),
    "stripe_refunded": event("charge.refunded", {"id": "ch_3Pq", "object": "charge", "amount": 800,
        "amount_refunded": 300, "currency": "eur", "payment_intent": "pi_3Pq", "metadata": {"reservation": RES}}),
    "stripe_other_type": event("customer.created", {"id": "cus_1"}),
    "stripe_not_parq": event("payment_intent.succeeded", {"id": "pi_2", "metadata": {}}),
}
def envelope(kind):
    return js({"created": NOW, "event": dict({"id": "evt_test_7", "intent_id": "pi_test_3", "reservation": RES}, **kind)})
test = {
    "test_authorized": envelope({"type": "authorized"}),
    "test_succeeded": envelope({"type": "succeeded"}),
    "test_failed": envelope({"type": "failed", "reason": "insufficient_funds"}),
    "test_canceled": envelope({"type": "canceled"}),
    "test_refunded": envelope({"type": "refunded", "amount": {"minor": 450, "currency": "EUR"}}),
}
for name, body in {**stripe, **test}.items():
    write("webhook", "signed_" + name, b"\x01" + struct.pack("<q", NOW) + body)
    write("webhook", "raw_" + name, b"\x00" + header(body, NOW).encode() + b"\n" + body)
write("webhook", "signed_late", b"\x01" + struct.pack("<q", NOW - 301) + stripe["stripe_succeeded"])
write("webhook", "signed_garbage", b"\x01" + struct.pack("<q", NOW) + b"not json")
for pos, mask in [(1, 1), (5, 2), (20, 0x20), (80, 1), (200, 0x80)]:
    write("webhook", f"altered_{pos}_{mask}", b"\x02" + struct.pack("<HB", pos, mask) + stripe["stripe_succeeded"])
write("webhook", "raw_v0_and_spaces", b"\x00t=1800000000, v0=abc, v1=zz\n{}")

# traceparent: the W3C specification's examples and their invalid neighbours.
for name, v in {
    "w3c_sampled": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "w3c_not_sampled": "00-0af7651916cd43dd8448eb211c80319c-b9c7c989f97918e1-00",
    "w3c_b3_style": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "future_version": "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-what-the-future-holds",
    "version_ff": "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "upper_case": "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
    "zero_trace": "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    "zero_parent": "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
    "v00_extra_field": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
    "padded": "  00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\t",
    "short_trace": "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
    "empty": "",
}.items():
    write("traceparent", name, v)

# config: the documented defaults, a production-like file, the demo, and mistakes.
write("config", "empty", "")
write("config", "defaults", """bind = "127.0.0.1:8080"
store_url = "memory:"
store_schema = "parq"
pg_pool_size = 16
lock_url = "none"
notifier_url = "memory:"
redis_prefix = "parq"
gateway = "test"
stripe_send_description = true
reconcile_interval_secs = 60
session_ttl_secs = 43200
sweep_interval_secs = 5
sweep_batch = 500
rate_ip = 50
rate_user = 20
rate_key = 200
rate_burst = 4
log = "info"
log_format = "json"
shutdown_grace_secs = 30
""")
write("config", "production", """# parq.toml
bind = "0.0.0.0:8080"
store_url = "postgres://parq@db.internal:5432/parq?sslmode=require"
store_schema = "parq_prod"
pg_pool_size = 32
lock_url = "redis://cache.internal:6379/0"
notifier_url = "postgres"
redis_prefix = "parq-eu1"
accounts_url = "postgres://parq@db.internal:5432/parq"
gateway = "stripe"
webhook_secret = "whsec_1234567890abcdef"
stripe_secret_key = "sk_test_51Hx"
stripe_api_base = "http://localhost:8420"
stripe_send_description = false
pass_signing_key = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
demo = false
log = "info,parq_server=debug"
log_format = "text"
map_style_url = "https://tiles.example.org/style.json"
map_tile_url = "/tiles/{z}/{x}/{y}.png"
public_parking_file = "/etc/parq/free-parking.geojson"
""")
write("config", "demo", 'demo = true\noperator_key = "op_demo"\ngate_key = "gate_demo"\nrate_burst = 10\n')
write("config", "pass_keys", '''store_url = "postgres://parq@db/parq"
admin_key = "an-admin-key-of-the-platform-01"
pass_keys = """
[[keys]]
id = 1
retired = true

[[keys]]
id = 2
seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
"""
''')
write("config", "unknown_key", 'bind = "127.0.0.1:8080"\nnonsense = 1\n')
write("config", "bad_schema", 'store_schema = "Parq Prod"\n')
write("config", "zero_rate", "rate_ip = 0\n")
write("config", "negative_pool", "pg_pool_size = -1\n")
write("config", "table_value", "[bind]\nhost = \"x\"\n")
write("config", "not_toml", "bind = \n")

# geojson: the demo city's free public parking as GeoJSON and as a plain array.
places = [
    ("Tripoli Bastion", 35.1728, 33.3576, 150, "Free, unmarked; busy on weekdays (demo data)"),
    ("Constanza Bastion", 35.1689, 33.3703, 80, "Free after 15:00 (demo data)"),
    ("Limassol Old Port, east lot", 34.6722, 33.0431, 120, "Free, gravel (demo data)"),
    ("Akti Olympion seafront", 34.6868, 33.0616, 60, "Free street parking (demo data)"),
]
write("geojson", "demo.geojson", json.dumps({"type": "FeatureCollection", "features": [
    {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
     "properties": {"name": n, "capacity": c, "notes": notes}} for n, lat, lon, c, notes in places]}, indent=1))
write("geojson", "demo_array.json", json.dumps([
    {"name": n, "lat": lat, "lon": lon, "capacity": c, "notes": notes} for n, lat, lon, c, notes in places]))
write("geojson", "minimal.geojson", '{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Point","coordinates":[-0.1276,51.5072]},"properties":{"name":"London"}}]}')
write("geojson", "polygon.geojson", '{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]},"properties":{"name":"area"}}]}')
write("geojson", "out_of_range.json", '[{"name":"north","lat":91,"lon":0}]')
write("geojson", "empty.geojson", '{"type":"FeatureCollection","features":[]}')

# plate: plates as drivers type them and cameras read them, from several countries.
for name, p in {
    "fr": "AB-123-CD", "de": "M-AB 1234", "de_umlaut": "MÜ-X 99", "uk": "AB51 ABC", "it": "AA 000 AA",
    "cy": "KXA 123", "gr": "ΙΚΝ-1234", "ru": "А123ВЕ77", "ch": "ZH 123456", "nl": "12-ABC-3",
    "us_ny": "ABC-1234", "jp_kana": "品川 300 さ 12-34", "pl": "WA 12345", "es": "1234 BCD",
    "dots": "m.ab.1234", "nbsp": "abc\u00a0123", "eszett": "straße 1", "too_long": "ABCDEFGHIJKLMNOPQ",
    "underscore": "AB_123", "arabic_digits": "AB١٢٣", "emoji": "AB123🚗", "empty": "",
}.items():
    write("plate", name, p)

# request_bodies: the first byte picks the type (see fuzz_targets/request_bodies.rs).
window = {"start": "2031-01-01T10:00:00Z", "end": "2031-01-01T11:00:00Z"}
rates = {"currency": "EUR", "lines": [{"kind": "flat", "amount": 300},
         {"kind": "incrementing", "after_minutes": 60, "every_minutes": 30, "amount": 150},
         {"kind": "tiered", "tiers": [{"up_to_minutes": 60, "amount": 200}, {"up_to_minutes": None, "amount": 900}]}],
         "daily_cap": 2000}
bodies = [
    (0, "register", {"email": "nikos@example.cy", "password": "a long enough password"}),
    (0, "register_short", {"email": "x@example.cy", "password": "short"}),
    (1, "login_totp", {"email": "nikos@example.cy", "password": "a long enough password", "totp_code": "123456"}),
    (1, "login_recovery", {"email": "eleni@example.cy", "password": "wrong password!", "recovery_code": "abcd-efgh"}),
    (2, "confirm", {"code": "123456"}),
    (3, "hold", {"lot_id": LOT, "start": "2031-01-01T10:00:00Z", "end": "2031-01-01T11:00:00Z"}),
    (3, "hold_spot_filter", {"lot_id": LOT, "start": "2031-01-01T10:00:00Z", "end": "2031-01-01T11:00:00Z",
                             "spot_id": SPOT, "filter": {"ev": True, "min_size": "large"}}),
    (3, "hold_unknown_field", {"lot_id": LOT, "start": "2031-01-01T10:00:00Z", "end": "2031-01-01T11:00:00Z", "colour": "red"}),
    (4, "extend", {"end": "2031-01-01T12:00:00Z"}),
    (5, "scan", {"pass": "NOT-A-PASS", "lot_id": LOT, "direction": "entry", "gate": "north-1", "scan_id": "s-1"}),
    (6, "lot", {"name": "Old Port", "location": {"lat": 34.6722, "lon": 33.0431}, "time_zone": "Asia/Nicosia",
                "granularity": "PT15M", "hold_ttl": "PT10M", "max_stay": "P1D", "grace": "PT15M",
                "max_holds_per_user": 3, "rates": rates,
                "cancellation": {"full_refund_before": "PT24H", "late_refund_percent": 50},
                "opening_hours": {"kind": "weekly", "intervals": [{"day": "monday", "open": "08:00", "close": "20:00"}]},
                "blackouts": [window]}),
    (6, "lot_minimal", {"name": "Bastion", "location": {"lat": 35.17, "lon": 33.36}, "rates": rates}),
    (7, "spot", {"label": "A-12", "attributes": {"ev": True, "accessible": False, "size": "standard"}}),
    (8, "blackouts", {"blackouts": [window, {"start": "2031-02-01T00:00:00Z", "end": "2031-02-02T00:00:00Z"}]}),
    (9, "key", {"name": "north gate", "role": "gate"}),
    (10, "pay", {}),
    (10, "pay_decline", {"decline": "insufficient_funds", "capture": False}),
    (11, "rates", rates),
    (12, "window", window),
    (12, "window_backwards", {"start": "2031-01-01T12:00:00Z", "end": "2031-01-01T10:00:00Z"}),
    (13, "filter", {"accessible": True}),
    (14, "attributes", {"ev": False, "accessible": True, "size": "large"}),
    (15, "opening_always", {"kind": "always"}),
    (16, "cancellation", {"full_refund_before": "PT2H", "late_refund_percent": 100}),
]
for which, name, body in bodies:
    write("request_bodies", name, bytes([which]) + js(body))

# live_payload: what socket.io-client and python-socketio send.
write("live_payload", "subscribe", b"\x00" + js({"lot": LOT}))
write("live_payload", "subscribe_after", b"\x00" + js({"lot": LOT, "after": 41}))
write("live_payload", "subscribe_null_after", b"\x00" + js({"lot": LOT, "after": None}))
write("live_payload", "subscribe_bad_lot", b"\x00" + js({"lot": "north", "after": -1}))
write("live_payload", "unsubscribe", b"\x01" + js({"lot": LOT}))
write("live_payload", "unsubscribe_extra", b"\x01" + js({"lot": LOT, "after": 3}))
write("live_payload", "auth_token", b"\x02" + js({"token": " sess_0123456789abcdef "}))
write("live_payload", "auth_null", b"\x02" + js({"token": None}))
write("live_payload", "auth_number", b"\x02" + js({"token": 42}))
write("live_payload", "auth_empty", b"\x02{}")
