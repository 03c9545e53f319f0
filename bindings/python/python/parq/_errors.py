"""ParQ's exceptions: one base class, ``ParqError``, and a subclass per error code.

Every exception carries ``.code`` (the same stable code as the REST API's problem types) and
the details of the failure as attributes (``Conflict.reason``, ``Unavailable.retryable``, …).
"""

from __future__ import annotations

from typing import Any, ClassVar, Optional
import uuid

__all__ = [
    "BackendError", "Conflict", "Forbidden", "HoldExpired", "IdempotencyMismatch", "InvalidInput",
    "InvalidTransition", "LimitExceeded", "NotFound", "ParqError", "PaymentDeclined", "ScanRefused",
    "StaleFence", "Unavailable",
]


class ParqError(Exception):
    """Base class of every error ParQ raises."""

    code: ClassVar[str] = "error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        for k, v in details.items():
            setattr(self, k, v)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class Conflict(ParqError):
    """The spot (or every matching spot) is taken for an overlapping window, or the lot is closed.

    ``reason`` is ``"spot_taken"`` (with ``spot``), ``"no_free_spot"``, ``"blackout"`` or ``"claimed"``.
    """

    code = "conflict"
    reason: str
    spot: Optional[uuid.UUID]


class NotFound(ParqError):
    """What was asked for does not exist (or is not the caller's); ``what`` names it."""

    code = "not_found"
    what: str


class InvalidTransition(ParqError):
    """The reservation's ``state`` does not allow ``action``."""

    code = "invalid_transition"
    reservation: uuid.UUID
    state: Any
    action: str


class HoldExpired(ParqError):
    """The hold's deadline passed before the operation."""

    code = "hold_expired"
    reservation: uuid.UUID


class StaleFence(ParqError):
    """A fencing number older than the reservation's current one was presented."""

    code = "stale_fence"
    reservation: uuid.UUID
    presented: int
    current: int


class LimitExceeded(ParqError):
    """A limit was reached (holds per driver, maximum stay, …); ``limit`` says which."""

    code = "limit_exceeded"
    limit: str


class IdempotencyMismatch(ParqError):
    """The idempotency ``key`` was used before with a different request."""

    code = "idempotency_mismatch"
    key: str


class PaymentDeclined(ParqError):
    """The payment provider declined; ``reason`` is the provider's."""

    code = "payment_declined"
    reason: str


class Unavailable(ParqError):
    """A backend is unavailable; ``retryable`` says whether trying again may help."""

    code = "unavailable"
    retryable: bool


class InvalidInput(ParqError, ValueError):
    """The input is malformed or breaks a rule of the lot; ``field`` names the argument."""

    code = "invalid"
    field: str


class ScanRefused(ParqError):
    """A gate refused a scan; ``reason`` is a ``parq.Refusal``."""

    code = "scan_refused"
    reason: Any


class Forbidden(ParqError):
    """The caller may not do this."""

    code = "forbidden"


class BackendError(ParqError):
    """A backend failed in a way that is none of the above; ``backend`` names it."""

    code = "backend"
    backend: str


_BY_CODE: dict[str, type[ParqError]] = {
    c.code: c
    for c in (
        Conflict, NotFound, InvalidTransition, HoldExpired, StaleFence, LimitExceeded,
        IdempotencyMismatch, PaymentDeclined, Unavailable, InvalidInput, ScanRefused, Forbidden,
        BackendError,
    )
}


def _class_for(code: str) -> type[ParqError]:
    return _BY_CODE.get(code, ParqError)
