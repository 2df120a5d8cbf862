"""gunicorn's configuration for issuer (``make serve``: ``gunicorn -c python:issuer.gunicorn_conf wsgi:app``).

Every value can be changed through the environment without editing this file:

- ``ISSUER_BIND`` (``127.0.0.1:8000``): where to listen; put a TLS-terminating proxy in front.
- ``WEB_CONCURRENCY`` (2 per core): worker processes. Letters render in the queue's workers,
  so web requests are short: database look-ups, JSON, a PDF signature check.
- ``ISSUER_THREADS`` (4): threads per worker (``gthread``), so a slow client or a PDF upload
  does not hold a whole process.
- ``ISSUER_TIMEOUT`` (120 s): a worker silent this long is restarted. Without a job queue a
  5,000-vehicle letter is sealed inside the request (about 25 s on 2 cores).
- ``ISSUER_GRACEFUL_TIMEOUT`` (30 s): on SIGTERM, requests in flight get this long to finish
  before their worker is stopped; new connections are no longer accepted meanwhile.
- ``ISSUER_FORWARDED_ALLOW_IPS`` (``127.0.0.1``): proxies whose ``X-Forwarded-*`` headers are
  believed.

Workers are recycled after about 200,000 requests (with jitter), bounding any slow growth of
memory; fewer would empty the kept verification answers every few seconds at verification rates
(bench/serve_verify.py). The app is not preloaded: each worker builds its own (database pool, mail thread),
which is what forking requires of them.
"""

from __future__ import annotations

import multiprocessing
import os


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


bind = os.environ.get("ISSUER_BIND", "127.0.0.1:8000")
workers = _int("WEB_CONCURRENCY", 2 * multiprocessing.cpu_count())
worker_class = "gthread"
threads = _int("ISSUER_THREADS", 4)
timeout = _int("ISSUER_TIMEOUT", 120)
graceful_timeout = _int("ISSUER_GRACEFUL_TIMEOUT", 30)
keepalive = 5
max_requests = 200_000
max_requests_jitter = 20_000
preload_app = False
forwarded_allow_ips = os.environ.get("ISSUER_FORWARDED_ALLOW_IPS", "127.0.0.1")
# The app writes one structured access line per request (with its request id): gunicorn's own
# access log would repeat it. gunicorn's error log (start, stop, worker deaths) goes to stderr.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("ISSUER_LOG_LEVEL", "info").lower()
proc_name = "issuer"
# Request line and header limits (gunicorn's defaults, stated): oversized ones get a 4xx.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
