# examples/django_app.py — Django views on parq.Engine (one module; in a project, views.py and urls.py)
import json
import os
from datetime import datetime

import django
from django.conf import settings

if not settings.configured:
    settings.configure(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"], SECRET_KEY="example-only", MIDDLEWARE=[])
    django.setup()

from django.http import HttpRequest, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402
from django.views.decorators.http import require_POST  # noqa: E402

import parq  # noqa: E402

# Built when the module is imported: in each worker process (gunicorn without --preload), as
# parq wants. Calls block with the GIL released, so threaded workers hold in parallel.
ENGINE = parq.Engine(os.environ.get("PARQ_STORE", "memory:"), webhook_secret=os.environ.get("PARQ_WEBHOOK_SECRET"))

STATUS = {"conflict": 409, "not_found": 404, "invalid": 400, "idempotency_mismatch": 422,
          "limit_exceeded": 422, "hold_expired": 410, "invalid_transition": 409}


def problem(exc: parq.ParqError) -> JsonResponse:
    status = STATUS.get(exc.code, 503)
    body = {"type": f"https://parq.example/problems/{exc.code}", "title": exc.code, "status": status, "detail": str(exc)}
    return JsonResponse(body, status=status, content_type="application/problem+json")


@csrf_exempt
@require_POST
def hold_view(request: HttpRequest) -> JsonResponse:
    try:
        b = json.loads(request.body)
        r = ENGINE.hold(
            b["user"], b["lot"], datetime.fromisoformat(b["start"]), datetime.fromisoformat(b["end"]),
            spot=b.get("spot"), idempotency_key=request.headers.get("Idempotency-Key"),
        )
    except parq.ParqError as e:
        return problem(e)
    except (KeyError, ValueError) as e:
        return problem(parq.InvalidInput(f"invalid body: {e}", field="body"))
    return JsonResponse(r.to_dict(), status=201)


@csrf_exempt
@require_POST
def stripe_webhook_view(request: HttpRequest) -> JsonResponse:
    try:
        r = ENGINE.handle_webhook(request.body, request.headers.get("Stripe-Signature", ""))
    except parq.ParqError as e:
        return problem(e)
    return JsonResponse({"reservation": str(r.id), "state": r.state.value})


urlpatterns = [
    path("holds", hold_view),
    path("webhooks/stripe", stripe_webhook_view),
]
