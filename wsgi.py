"""The WSGI entry point: ``gunicorn wsgi:app`` (see issuer/gunicorn_conf.py) or ``flask --app wsgi run``."""

import sys

from issuer import create_app
from issuer.config import ConfigurationError, Settings
from issuer.observability import configure_logging

# The exit status gunicorn reads as "the application failed to load": its master then stops
# instead of starting new workers that would fail the same way, forever.
APP_LOAD_ERROR = 4

try:
    settings = Settings.from_environment()
    configure_logging(log_format=settings.log_format, level=settings.log_level)
    app = create_app(settings)
except ConfigurationError as error:
    # A deployment not fit to run (e.g. production with a development secret): say what to set,
    # in one line; a traceback would only bury the message.
    print(f"issuer: refusing to start: {error}", file=sys.stderr)
    raise SystemExit(APP_LOAD_ERROR) from None
