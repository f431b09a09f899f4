"""The protected resource and the test controls of the DOT test server.

DOT's own ``ProtectedResourceView`` answers a bad token with a bare 403, which gives a
client no reason to refresh; ``whoami`` answers RFC 6750's 401 + ``WWW-Authenticate``
instead. ``CountingMiddleware`` counts what the token endpoint and the resource served
(the tests' ground truth for "exactly one refresh grant"); ``/__test/*`` reads and resets
the counts and expires access tokens on the server's side. Tokens are never logged.
"""

import json
import threading
from datetime import timedelta

from django.http import HttpResponse, JsonResponse, QueryDict
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from oauth2_provider.models import get_access_token_model, get_refresh_token_model
from oauth2_provider.oauth2_backends import get_oauthlib_core

REALM = "dot-test"
_COUNTER_NAMES = (
    "refresh_requests",
    "refresh_success",
    "refresh_rejected",
    "refresh_server_error",
    "code_success",
    "token_other",
    "resource_ok",
    "resource_unauthorized",
)
_lock = threading.Lock()
_counts = dict.fromkeys(_COUNTER_NAMES, 0)


def _bump(name):
    with _lock:
        _counts[name] += 1


class CountingMiddleware:
    """Counts token-endpoint answers by grant type and status (threads share the dict)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        grant = None
        if request.method == "POST" and request.path == "/o/token/":
            # request.body first: it stays cached, so DOT can still read request.POST.
            grant = QueryDict(request.body).get("grant_type")
        response = self.get_response(request)
        if grant == "refresh_token":
            _bump("refresh_requests")
            if response.status_code == 200:
                _bump("refresh_success")
            elif response.status_code >= 500:
                _bump("refresh_server_error")
            else:
                _bump("refresh_rejected")
        elif grant == "authorization_code" and response.status_code == 200:
            _bump("code_success")
        elif grant is not None:
            _bump("token_other")
        return response


def whoami(request):
    """200 + the user for a valid token; 401 + a Bearer challenge otherwise (RFC 6750 §3)."""
    if "HTTP_AUTHORIZATION" not in request.META:
        # §3.1: a request without credentials gets a challenge but no error code.
        return _unauthorized(f'Bearer realm="{REALM}"')
    valid, oauthlib_request = get_oauthlib_core().verify_request(request, scopes=["read"])
    if not valid:
        return _unauthorized(
            f'Bearer realm="{REALM}", error="invalid_token", '
            'error_description="The access token is invalid or has expired"'
        )
    _bump("resource_ok")
    user = oauthlib_request.user
    return JsonResponse({"user": user.get_username(), "scope": oauthlib_request.scopes})


def _unauthorized(challenge):
    _bump("resource_unauthorized")
    response = HttpResponse(
        '{"error": "invalid_token"}', status=401, content_type="application/json"
    )
    response["WWW-Authenticate"] = challenge
    return response


@require_GET
def stats(request):
    refresh_tokens = get_refresh_token_model().objects
    with _lock:
        counts = dict(_counts)
    counts.update(
        refresh_tokens=refresh_tokens.count(),
        refresh_tokens_revoked=refresh_tokens.filter(revoked__isnull=False).count(),
        access_tokens=get_access_token_model().objects.count(),
    )
    return JsonResponse(counts)


@csrf_exempt
@require_POST
def reset(request):
    with _lock:
        _counts.update(dict.fromkeys(_COUNTER_NAMES, 0))
    return JsonResponse({"ok": True})


@csrf_exempt
@require_POST
def expire_access_tokens(request):
    """Every access token now expired on the server's side (the resource will refuse it)."""
    past = timezone.now() - timedelta(seconds=60)
    changed = get_access_token_model().objects.update(expires=past)
    return HttpResponse(json.dumps({"expired": changed}), content_type="application/json")
