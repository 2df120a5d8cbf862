"""Abuse limits and the security headers every response carries.

Rate limits (Flask-Limiter, moving window: at most N requests in any window, not N per clock
minute, so no burst of 2N across a boundary):

- sign-in attempts (``POST /login``), per client address: 10 a minute, 50 an hour;
- failed sign-ins (``POST /login`` answered 401), per e-mail typed, known or not, from any
  address: 5 a minute, 30 an hour;
- failed bearer authentication (any ``/api/`` call answered 401), per address: 20 a minute,
  200 an hour;
- API calls bearing a token, per token: 600 a minute;
- verification by number and code (``/verify/<n>`` and ``/api/v1/verify/<n>`` together), per
  address: 30 a minute, 500 an hour;
- PDF uploads (``POST /verify`` and ``POST /api/v1/verify`` together), per address: 10 a minute,
  60 an hour.

A limit that counts only failures (deduct_when) is still checked before the request runs: once
it is reached, even the right password or token waits, or guessing would go on. An exceeded
limit answers 429 with Retry-After (JSON under /api/, a page elsewhere; see issuer.web.errors).

The counters live in Redis when ``REDIS_URL`` is set (shared by every worker), else in the
process's memory (each worker counts alone). If Redis cannot be reached, the limiter falls back
to counting in memory and logs a warning, and goes back to Redis when it answers again: limits
stay in force per worker (fail closed would make a Redis outage an outage of sign-in and
verification; fail open would lift every limit exactly when an attacker could cause it).

The client address is the TCP peer, unless ``ISSUER_TRUSTED_PROXIES`` says how many proxies in
front of the app append to X-Forwarded-For (ProxyFix then takes the address they saw). Without
it the header is ignored: any client can write it, and believing it would let each request
claim a new address.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, Response, current_app, request
from flask_limiter import ApplicationLimit, Limiter, RateLimitExceeded
from werkzeug.middleware.proxy_fix import ProxyFix

from issuer.config import Settings
from issuer.web.auth import client_address, is_api_request

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

LOGIN_PER_ADDRESS = "10/minute;50/hour"
FAILED_LOGIN_PER_EMAIL = "5/minute;30/hour"
FAILED_TOKEN_PER_ADDRESS = "20/minute;200/hour"  # noqa: S105 - a rate, not a secret
API_PER_TOKEN = "600/minute"  # noqa: S105 - a rate, not a secret
VERIFY_LOOKUP_PER_ADDRESS = "30/minute;500/hour"
VERIFY_UPLOAD_PER_ADDRESS = "10/minute;60/hour"

# A Redis that does not answer must not hold a request for long before the fallback.
REDIS_TIMEOUT_SECONDS = 0.5


def _digest(value: str) -> str:
    # Counters are keyed by a digest: no token or e-mail is ever written to the limiter's storage.
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def _bearer_token() -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _address_key() -> str:
    return "address:" + client_address()


def _email_key() -> str:
    email = request.form.get("email", "").strip().lower()
    return "email:" + _digest(email) if email else ""


def _token_key() -> str:
    token = _bearer_token()
    return "token:" + _digest(token) if token else ""


def _failed(response: Response) -> bool:
    return response.status_code == 401


@dataclass(frozen=True)
class RateLimit:
    """One limit: ``limit`` is a Flask-Limiter limit string, ``key`` names what is counted
    (an empty key: not counted), ``counts`` which answers count (None: every request)."""

    name: str
    limit: str
    key: Callable[[], str]
    methods: tuple[str, ...] | None = None
    counts: Callable[[Response], bool] | None = None
    on_api: bool = False  # applies to every /api/ call, not only to the views that declare it

    def applies(self) -> bool:
        if self.methods is not None and request.method not in self.methods:
            return False
        if self.on_api:
            applies = is_api_request()
        else:
            view = current_app.view_functions.get(request.endpoint or "")
            applies = self in getattr(view, "rate_limits", ())
        return applies and bool(self.key())


LOGIN = RateLimit("login-address", LOGIN_PER_ADDRESS, _address_key, methods=("POST",))
FAILED_LOGIN = RateLimit("login-email", FAILED_LOGIN_PER_EMAIL, _email_key, methods=("POST",), counts=_failed)
FAILED_TOKEN = RateLimit("token-failures", FAILED_TOKEN_PER_ADDRESS, _address_key, counts=_failed, on_api=True)
API_TOKEN = RateLimit("token-use", API_PER_TOKEN, _token_key, on_api=True)
VERIFY_LOOKUP = RateLimit("verify-lookup", VERIFY_LOOKUP_PER_ADDRESS, _address_key)
VERIFY_UPLOAD = RateLimit("verify-upload", VERIFY_UPLOAD_PER_ADDRESS, _address_key, methods=("POST",))
RATE_LIMITS = (LOGIN, FAILED_LOGIN, FAILED_TOKEN, API_TOKEN, VERIFY_LOOKUP, VERIFY_UPLOAD)


def rate_limited(*limits: RateLimit) -> Callable[[F], F]:
    """Declare the limits of a view. The view is not wrapped: each app gets a limiter of its own
    (so two apps, e.g. in tests, never share one's memory or settings), in which every limit is
    an application-wide one, exempt wherever it does not apply (:meth:`RateLimit.applies`)."""

    def declare(view: F) -> F:
        view.rate_limits = (*getattr(view, "rate_limits", ()), *limits)  # type: ignore[attr-defined]
        return view

    return declare


def _limiter(settings: Settings) -> Limiter:
    storage_uri = settings.redis_url or "memory://"
    options: dict[str, Any] = {}
    if settings.redis_url:
        options = {"socket_connect_timeout": REDIS_TIMEOUT_SECONDS, "socket_timeout": REDIS_TIMEOUT_SECONDS}
    return Limiter(
        _address_key,
        application_limits=[
            ApplicationLimit(
                limit.limit,
                key_function=limit.key,
                scope=limit.name,
                exempt_when=lambda limit=limit: not limit.applies(),
                deduct_when=limit.counts,
            )
            for limit in RATE_LIMITS
        ],
        strategy="moving-window",
        storage_uri=storage_uri,
        storage_options=options,
        key_prefix="issuer",
        in_memory_fallback_enabled=True,
        swallow_errors=True,  # a storage failure after the answer is computed must not turn it into a 500
        headers_enabled=False,  # only a 429 says when to come back (Retry-After)
        enabled=settings.ratelimit_enabled,
    )


def retry_after(error: RateLimitExceeded) -> int:
    """Seconds until the exceeded limit lets a request through again (at least 1)."""
    limiter: Limiter | None = current_app.extensions.get("issuer.limiter")
    window = int(error.limit.limit.get_expiry())
    try:
        current = limiter.current_limit if limiter is not None else None
        if current is not None and current.breached:
            return max(1, min(window, current.reset_at - int(time.time())))
    except Exception:  # the storage went away meanwhile: the window's length is a safe answer
        log.warning("could not read the rate limit window; answering its full length")
    return window


# -- headers -------------------------------------------------------------------------------------

# Pages load their scripts, stylesheet and images from this site only, with no inline code (the
# QR code and the coverage chart are inline SVG elements, not images, so no data: source is
# needed); scripts may call back only this site (the import progress bar polls it).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    ]
)
# same-origin, not no-referrer: the CSRF check over HTTPS (Flask-WTF) and the return after a
# session ended need the Referer of this site's own pages, while other sites never get one (a
# /verify/<number>?code=… address holds the verification code).
REFERRER_POLICY = "same-origin"
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=()"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": REFERRER_POLICY,
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": PERMISSIONS_POLICY,
}
STRICT_TRANSPORT_SECURITY = "max-age=31536000; includeSubDomains"  # production only: it pins HTTPS for a year


def _add_security_headers(response: Response, *, production: bool) -> Response:
    response.headers.update(SECURITY_HEADERS)
    if production:
        response.headers["Strict-Transport-Security"] = STRICT_TRANSPORT_SECURITY
    # Nothing is stored by browsers or proxies but what is public by nature: the static files
    # (revalidated) and answers that say so (the published seal keys).
    if request.endpoint != "static" and not response.cache_control.public:
        response.cache_control.no_store = True
    return response


def init_security(app: Flask, settings: Settings) -> None:
    """Believe X-Forwarded-For only from configured proxies, count the rate limits, and add the
    security headers to every response (pages, API, static files and errors)."""
    if settings.trusted_proxies:
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)  # type: ignore[method-assign]
    app.config["RATELIMIT_ENABLED"] = settings.ratelimit_enabled
    limiter = _limiter(settings)
    limiter.init_app(app)
    app.extensions["issuer.limiter"] = limiter
    if settings.ratelimit_enabled and settings.production and not settings.redis_url:
        log.warning("REDIS_URL is not set: each worker counts the rate limits on its own")

    @app.after_request
    def security_headers(response: Response) -> Response:
        return _add_security_headers(response, production=settings.production)
