"""ParQ's values as Python types: frozen dataclasses and enums.

Ids are ``uuid.UUID``; instants are timezone-aware ``datetime`` in UTC; durations are
``timedelta``; money is ``Money`` (integer minor units and an ISO 4217 code, never a float).
Every value has ``to_dict()``, which gives JSON-ready values in the form of ParQ's REST API.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import typing
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar, Optional, Union

__all__ = [
    "Availability", "Cancellation", "CancellationPolicy", "Checkout", "DayInterval", "Direction",
    "Event", "EventKind", "FlatRate", "GateSession", "GeoPoint", "IncrementingRate", "IntentStatus",
    "Lot", "LotMatch", "Money", "OpeningHours", "Operator", "Pass", "PaymentIntent", "PaymentRef",
    "PublicKey", "Quote", "RateLine", "RateTable", "Refund", "Refusal", "ReservationState",
    "Revocation", "RevocationDelta", "ScanDecision", "Spot", "SpotAttributes", "SpotFilter",
    "SpotSize", "SpotStatus", "SweepReport", "Tier", "TieredRate", "WebhookDelivery", "Window",
]


class _StrEnum(str, enum.Enum):
    def __str__(self) -> str:
        return str(self.value)


class ReservationState(_StrEnum):
    """Where a reservation is in its life."""

    HELD = "held"
    PENDING_PAYMENT = "pending_payment"
    CONFIRMED = "confirmed"
    CHECKED_IN = "checked_in"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"


class EventKind(_StrEnum):
    """What happened to a reservation."""

    HELD = "held"
    PAYMENT_STARTED = "payment_started"
    PAYMENT_FAILED = "payment_failed"
    CONFIRMED = "confirmed"
    REINSTATED = "reinstated"
    CAPTURED = "captured"
    REFUNDED = "refunded"
    EXTENDED = "extended"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    CHECKED_IN = "checked_in"
    CHECKED_OUT = "checked_out"
    NO_SHOW = "no_show"


class SpotSize(_StrEnum):
    """Size class of a spot, from smallest."""

    MOTORCYCLE = "motorcycle"
    COMPACT = "compact"
    STANDARD = "standard"
    LARGE = "large"


class IntentStatus(_StrEnum):
    """The payment provider's state of an intent."""

    REQUIRES_PAYMENT_METHOD = "requires_payment_method"
    REQUIRES_CONFIRMATION = "requires_confirmation"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    REQUIRES_CAPTURE = "requires_capture"
    SUCCEEDED = "succeeded"
    CANCELED = "canceled"


class Direction(_StrEnum):
    """Which way a vehicle goes through a gate."""

    ENTRY = "entry"
    EXIT = "exit"


class Refusal(_StrEnum):
    """Why a gate stays closed."""

    INVALID = "invalid"
    UNKNOWN_KEY = "unknown_key"
    REVOKED = "revoked"
    WRONG_LOT = "wrong_lot"
    TOO_EARLY = "too_early"
    EXPIRED = "expired"
    ALREADY_INSIDE = "already_inside"
    NOT_INSIDE = "not_inside"
    NOT_PAID = "not_paid"
    REENTRY_NOT_ALLOWED = "reentry_not_allowed"
    REPLAYED = "replayed"


# ----- wire conversions -------------------------------------------------------------------

_DURATION = re.compile(r"^(-)?PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)(?:\.(\d+))?S)?$")


def _parse_ts(s: str) -> datetime:
    # ParQ writes RFC 3339 in UTC with "Z" and up to nine fractional digits.
    base, _, rest = s.rstrip("Z").partition(".")
    dt = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    if rest:
        dt = dt.replace(microsecond=int(rest[:6].ljust(6, "0")))
    return dt


def _format_ts(dt: datetime, name: str) -> str:
    if not isinstance(dt, datetime):
        raise TypeError(f"{name} must be a timezone-aware datetime, not {type(dt).__name__}")
    if dt.utcoffset() is None:
        from ._errors import InvalidInput

        raise InvalidInput(
            f"invalid {name}: is a naive datetime; give a timezone-aware one", field=name
        )
    dt = dt.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + (f".{dt.microsecond:06d}" if dt.microsecond else "") + "Z"


def _parse_duration(s: str) -> timedelta:
    m = _DURATION.match(s)
    if not m:
        raise ValueError(f"not a duration: {s!r}")
    sign, h, mi, sec, frac = m.groups()
    d = timedelta(
        hours=int(h or 0),
        minutes=int(mi or 0),
        seconds=int(sec or 0),
        microseconds=int((frac or "0")[:6].ljust(6, "0")),
    )
    return -d if sign else d


def _format_duration(d: timedelta, name: str) -> str:
    if not isinstance(d, timedelta):
        raise TypeError(f"{name} must be a datetime.timedelta, not {type(d).__name__}")
    micros = (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    secs, frac = divmod(micros, 1_000_000)
    return f"{sign}PT{secs}" + (f".{frac:06d}" if frac else "") + "S"


class _Value:
    """Shared behaviour of ParQ's dataclasses."""

    _wire_tag: ClassVar[Optional[tuple[str, str]]] = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (ids, instants and durations as text), as ParQ's REST API shows them."""
        out = _encode_value(self, type(self), type(self).__name__)
        assert isinstance(out, dict)
        return out


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    h = _HINTS.get(cls)
    if h is None:
        h = typing.get_type_hints(cls)
        _HINTS[cls] = {f.name: h[f.name] for f in dataclasses.fields(cls)}
        h = _HINTS[cls]
    return h


def _decode_value(tp: Any, v: Any) -> Any:
    if tp is RevocationDelta:
        return RevocationDelta(v["from"], v["to"], tuple(_revocation_from_wire(r) for r in v["revocations"]))
    if tp is Revocation:
        return _revocation_from_wire(v)
    origin = typing.get_origin(tp)
    if origin is Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if v is None:
            return None
        if len(args) == 1:
            return _decode_value(args[0], v)
        # A union of tagged dataclasses (RateLine).
        for a in args:
            tag = getattr(a, "_wire_tag", None)
            if tag and v.get(tag[0]) == tag[1]:
                return _decode_value(a, v)
        raise ValueError(f"cannot read {v!r} as {tp}")
    if origin in (list, tuple):
        (arg, *_) = typing.get_args(tp)
        items = [_decode_value(arg, x) for x in v]
        return tuple(items) if origin is tuple else items
    if tp is Any:
        return v
    if isinstance(tp, type):
        if isinstance(v, tp) and not isinstance(v, (str, int)) or tp in (str, int, bool) and isinstance(v, tp):
            return v
        if tp is datetime:
            return _parse_ts(v)
        if tp is timedelta:
            return _parse_duration(v)
        if tp is uuid.UUID:
            return uuid.UUID(v)
        if tp is float:
            return float(v)
        if issubclass(tp, enum.Enum):
            return tp(v)
        if tp is OpeningHours:
            return OpeningHours._from_wire(v)
        if tp is ScanDecision:
            return ScanDecision._from_wire(v)
        if dataclasses.is_dataclass(tp):
            hints = _hints(tp)
            return tp(**{k: _decode_value(hints[k], v[k]) for k in hints if k in v})
    return v


def _encode_value(v: Any, tp: Any, name: str) -> Any:
    if v is None:
        return None
    if isinstance(v, enum.Enum):
        return v.value
    if isinstance(v, bool) or isinstance(v, (int, str)):
        return v
    if isinstance(v, float):
        return v
    if isinstance(v, datetime):
        return _format_ts(v, name)
    if isinstance(v, timedelta):
        return _format_duration(v, name)
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, (list, tuple)):
        return [_encode_value(x, Any, name) for x in v]
    if isinstance(v, (OpeningHours, RevocationDelta, Revocation)):
        return v.to_dict()
    if isinstance(v, ScanDecision):
        return v._to_wire()
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        out: dict[str, Any] = {}
        if v._wire_tag:  # type: ignore[attr-defined]
            out[v._wire_tag[0]] = v._wire_tag[1]  # type: ignore[attr-defined]
        for f in dataclasses.fields(v):
            out[f.name] = _encode_value(getattr(v, f.name), Any, f.name)
        return out
    if hasattr(v, "to_dict"):
        return v.to_dict()
    if isinstance(v, dict):
        return {k: _encode_value(x, Any, k) for k, x in v.items()}
    raise TypeError(f"{name}: cannot convert {type(v).__name__} for parq")


def _type_named(type_name: str) -> Any:
    if type_name.startswith("list[") and type_name.endswith("]"):
        return list[_type_named(type_name[5:-1])]  # type: ignore[misc]
    return globals()[type_name]


def _decode(type_name: str, wire: Any) -> Any:
    """Reads ParQ's serialised form (from the native module) as the named type."""
    return _decode_value(_type_named(type_name), wire)


def _encode(type_name: str, value: Any) -> Any:
    """Writes a value (one of these types, or a dict in the serialised form) for the native module."""
    tp = _type_named(type_name)
    if isinstance(value, dict):
        return value
    origin = typing.get_origin(tp)
    if origin is list:
        (arg,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"expected a list of {arg.__name__}, not {type(value).__name__}")
        return [x if isinstance(x, dict) else _encode_checked(arg, x) for x in value]
    return _encode_checked(tp, value)


def _encode_checked(tp: Any, value: Any) -> Any:
    if isinstance(tp, type) and not isinstance(value, tp):
        raise TypeError(f"expected parq.{tp.__name__} (or a dict), not {type(value).__name__}")
    return _encode_value(value, tp, tp.__name__)


# ----- the catalog ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Money(_Value):
    """An amount in minor units (cents) of an ISO 4217 currency."""

    minor: int
    currency: str

    def __str__(self) -> str:
        return f"{self.minor / 100:.2f} {self.currency}" if self.currency else str(self.minor)


@dataclass(frozen=True, slots=True)
class GeoPoint(_Value):
    """A point on Earth in degrees (WGS 84)."""

    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Window(_Value):
    """A half-open interval ``[start, end)`` of instants."""

    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Operator(_Value):
    """A tenant: owns lots and policies."""

    id: uuid.UUID
    name: str
    max_holds_per_user: Optional[int] = None


@dataclass(frozen=True, slots=True)
class Tier(_Value):
    """One tier of a ``TieredRate``: stays up to ``up_to_minutes`` (``None``: any) cost ``amount``."""

    up_to_minutes: Optional[int]
    amount: int


@dataclass(frozen=True, slots=True)
class FlatRate(_Value):
    """A fixed fee per 24-hour period of the stay, in minor units."""

    amount: int
    _wire_tag: ClassVar[Optional[tuple[str, str]]] = ("kind", "flat")


@dataclass(frozen=True, slots=True)
class TieredRate(_Value):
    """Each period priced by the first tier that covers its length."""

    tiers: tuple[Tier, ...]
    _wire_tag: ClassVar[Optional[tuple[str, str]]] = ("kind", "tiered")


@dataclass(frozen=True, slots=True)
class IncrementingRate(_Value):
    """Every started ``every_minutes`` after ``after_minutes`` (until ``until_minutes``) costs ``amount``."""

    every_minutes: int
    amount: int
    after_minutes: int = 0
    until_minutes: Optional[int] = None
    _wire_tag: ClassVar[Optional[tuple[str, str]]] = ("kind", "incrementing")


RateLine = Union[FlatRate, TieredRate, IncrementingRate]


@dataclass(frozen=True, slots=True)
class RateTable(_Value):
    """A lot's prices: the sum of its lines per 24-hour period, capped by ``daily_cap``."""

    currency: str
    lines: tuple[RateLine, ...]
    daily_cap: Optional[int] = None


@dataclass(frozen=True, slots=True)
class CancellationPolicy(_Value):
    """Full refund when cancelled ``full_refund_before`` the start; later, ``late_refund_percent``."""

    full_refund_before: timedelta
    late_refund_percent: int


@dataclass(frozen=True, slots=True)
class DayInterval(_Value):
    """Open ``[open, close)`` minutes after local midnight on ``weekday`` (Monday 1 … Sunday 7)."""

    weekday: int
    open: int
    close: int


@dataclass(frozen=True, slots=True)
class OpeningHours(_Value):
    """When a lot is open, in its local time: always (``intervals=None``) or weekly intervals."""

    intervals: Optional[tuple[DayInterval, ...]] = None

    def _to_wire(self) -> dict[str, Any]:
        if self.intervals is None:
            return {"kind": "always"}
        return {"kind": "weekly", "intervals": [_encode_value(i, DayInterval, "intervals") for i in self.intervals]}

    @classmethod
    def _from_wire(cls, v: dict[str, Any]) -> "OpeningHours":
        if v.get("kind") == "weekly":
            return cls(tuple(_decode_value(DayInterval, i) for i in v["intervals"]))
        return cls(None)

    def to_dict(self) -> dict[str, Any]:
        return self._to_wire()


@dataclass(frozen=True, slots=True)
class Lot(_Value):
    """A car park or a street zone and the rules it lives by."""

    id: uuid.UUID
    operator: uuid.UUID
    name: str
    location: GeoPoint
    time_zone: str
    rates: RateTable
    granularity: timedelta = timedelta(minutes=15)
    hold_ttl: timedelta = timedelta(minutes=10)
    max_stay: timedelta = timedelta(hours=24)
    grace: timedelta = timedelta(minutes=15)
    max_holds_per_user: Optional[int] = None
    cancellation: CancellationPolicy = CancellationPolicy(timedelta(hours=2), 50)
    opening_hours: OpeningHours = OpeningHours()
    blackouts: tuple[Window, ...] = ()
    # "allowed" or "not_allowed": whether a driver who left may enter again; None takes the
    # engine's `reentry` when the lot is put.
    reentry: Optional[str] = None


@dataclass(frozen=True, slots=True)
class SpotAttributes(_Value):
    """What a spot offers."""

    ev: bool = False
    accessible: bool = False
    size: SpotSize = SpotSize.STANDARD


@dataclass(frozen=True, slots=True)
class Spot(_Value):
    """One addressable place in a lot."""

    id: uuid.UUID
    lot: uuid.UUID
    label: str
    attributes: SpotAttributes = SpotAttributes()


@dataclass(frozen=True, slots=True)
class SpotFilter(_Value):
    """Which spots a pooled hold may take."""

    ev: bool = False
    accessible: bool = False
    min_size: Optional[SpotSize] = None


# ----- results ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Quote(_Value):
    """The price of a window in a lot."""

    lot: uuid.UUID
    window: Window
    price: Money


@dataclass(frozen=True, slots=True)
class SpotStatus(_Value):
    """A spot and whether it is free for the whole window."""

    spot: Spot
    free: bool


@dataclass(frozen=True, slots=True)
class Availability(_Value):
    """A lot's spots for a window, with how many are free and the window's price."""

    lot: uuid.UUID
    window: Window
    spots: tuple[SpotStatus, ...]
    free: int
    price: Money


@dataclass(frozen=True, slots=True)
class LotMatch(_Value):
    """A lot found near a point."""

    lot: Lot
    distance_m: float
    free: int
    price: Money


@dataclass(frozen=True, slots=True)
class PaymentRef(_Value):
    """What ParQ knows of a reservation's payment."""

    intent_id: str
    attempt: int
    amount: Money
    captured: bool
    refunded: int
    refund_settled: int = 0


@dataclass(frozen=True, slots=True)
class PaymentIntent(_Value):
    """A payment intent as the provider sees it; the driver pays it with ``client_secret``."""

    id: str
    status: IntentStatus
    amount: Money
    client_secret: Optional[str] = None
    reservation: Optional[uuid.UUID] = None


@dataclass(frozen=True, slots=True)
class Checkout(_Value):
    """The reservation awaiting payment and the intent to pay."""

    reservation: Any  # parq.Reservation
    intent: PaymentIntent

    def to_dict(self) -> dict[str, Any]:
        return {"reservation": self.reservation.to_dict(), "intent": self.intent.to_dict()}


@dataclass(frozen=True, slots=True)
class Cancellation(_Value):
    """A cancelled reservation and what went back to the driver in all."""

    reservation: Any  # parq.Reservation
    refunded: Money

    def to_dict(self) -> dict[str, Any]:
        return {"reservation": self.reservation.to_dict(), "refunded": self.refunded.to_dict()}


@dataclass(frozen=True, slots=True)
class Refund(_Value):
    """A refund at the payment provider."""

    id: str
    amount: Money


@dataclass(frozen=True, slots=True)
class WebhookDelivery(_Value):
    """A webhook as a payment provider sends it: the raw body and its signature header."""

    body: bytes
    signature: str

    def to_dict(self) -> dict[str, Any]:
        return {"body": self.body.decode("utf-8", "replace"), "signature": self.signature}


@dataclass(frozen=True, slots=True)
class GateSession(_Value):
    """One visit through a lot's gates: entry, and later exit."""

    id: uuid.UUID
    reservation: uuid.UUID
    entered_at: datetime
    entry_gate: str
    exited_at: Optional[datetime] = None
    exit_gate: Optional[str] = None
    entry_scan: Optional[str] = None
    exit_scan: Optional[str] = None


@dataclass(frozen=True, slots=True)
class Event(_Value):
    """A change to a reservation, numbered per lot from 1 without gaps."""

    lot: uuid.UUID
    seq: int
    at: datetime
    kind: EventKind
    reservation: uuid.UUID
    spot: uuid.UUID
    user: uuid.UUID
    window: Window
    state: ReservationState


@dataclass(frozen=True, slots=True)
class SweepReport(_Value):
    """What one sweep did."""

    expired: int = 0
    settled: int = 0
    no_shows: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class ScanDecision(_Value):
    """Whether a gate opens, and if not, why."""

    allowed: bool
    reason: Optional[Refusal] = None

    def __bool__(self) -> bool:
        return self.allowed

    def _to_wire(self) -> dict[str, Any]:
        if self.allowed:
            return {"decision": "allow"}
        return {"decision": "refuse", "reason": self.reason.value if self.reason else None}

    @classmethod
    def _from_wire(cls, v: dict[str, Any]) -> "ScanDecision":
        if v["decision"] == "allow":
            return cls(True, None)
        return cls(False, Refusal(v["reason"]))

    def to_dict(self) -> dict[str, Any]:
        return self._to_wire()


@dataclass(frozen=True, slots=True)
class PublicKey(_Value):
    """A pass-verifying public key (Ed25519, hex) and its key id."""

    id: int
    public_key: str


@dataclass(frozen=True, slots=True)
class Revocation(_Value):
    """One revocation: every pass of ``reservation``, or only the pass with nonce ``pass_``."""

    version: int
    reservation: uuid.UUID
    reason: str
    at: datetime
    pass_: Optional[Any] = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        d = {
            "version": self.version,
            "reservation": str(self.reservation),
            "reason": self.reason,
            "at": _format_ts(self.at, "at"),
        }
        if self.pass_ is not None:
            d["pass"] = self.pass_
        return d


@dataclass(frozen=True, slots=True)
class RevocationDelta(_Value):
    """What a gate holding version ``from_`` lacks to reach version ``to``."""

    from_: int
    to: int
    revocations: tuple[Revocation, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"from": self.from_, "to": self.to, "revocations": [r.to_dict() for r in self.revocations]}


@dataclass(frozen=True, slots=True)
class Pass(_Value):
    """A signed access pass: its text (what the QR code carries) and what it entitles to."""

    text: str
    key_id: int
    reservation: uuid.UUID
    lot: uuid.UUID
    spot: uuid.UUID
    window: Window
    nonce: str

    def qr_png(self, scale: int = 8) -> bytes:
        """The pass as a QR code in PNG."""
        from ._parq import render_qr_png

        return render_qr_png(self.text, scale)

    def qr_svg(self, min_size: int = 256) -> str:
        """The pass as a QR code in SVG."""
        from ._parq import render_qr_svg

        return render_qr_svg(self.text, min_size)

    def __repr__(self) -> str:
        return f"Pass(reservation={self.reservation}, lot={self.lot}, key_id={self.key_id}, text={self.text[:12]}…)"


def _revocation_from_wire(v: dict[str, Any]) -> Revocation:
    return Revocation(
        version=v["version"],
        reservation=uuid.UUID(v["reservation"]),
        reason=v["reason"],
        at=_parse_ts(v["at"]),
        pass_=v.get("pass"),
    )


def _resolve(fut: Any, ok: bool, value: Any) -> None:
    """Completes an asyncio future from the native runtime (called on the event loop)."""
    if fut.cancelled():
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)
