"""Settings, read from the environment once, when the app is created.

Every setting of CONTRACT.md lives here; nothing else reads ``os.environ``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

DEFAULT_DATABASE_URL = f"sqlite:///{PROJECT_ROOT / 'instance' / 'issuer.db'}"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"
DEVELOPMENT_SECRET_KEY = "development-only-secret-key"  # noqa: S105 - refused in production
# Without ISSUER_KEY_PASSPHRASE, development keys are still encrypted, with this public value;
# production refuses to start without a passphrase of its own.
DEVELOPMENT_KEY_PASSPHRASE = "development-only-key-passphrase"  # noqa: S105


class ConfigurationError(RuntimeError):
    """The environment does not describe a usable deployment."""


DEFAULT_SMTP_PORT = 587
SMTP_SECURITY = ("starttls", "ssl", "none")
DEFAULT_MAIL_FROM = "issuer <no-reply@localhost>"


def _port(value: str | None) -> int:
    if value is None or value.strip() == "":
        return DEFAULT_SMTP_PORT
    try:
        port = int(value.strip())
    except ValueError:
        raise ConfigurationError(f"ISSUER_SMTP_PORT must be a port number, not {value!r}") from None
    if not 0 < port < 65536:
        raise ConfigurationError(f"ISSUER_SMTP_PORT must be between 1 and 65535, not {port}")
    return port


def _smtp_security(value: str | None) -> str:
    security = (value or "starttls").strip().lower() or "starttls"
    if security not in SMTP_SECURITY:
        raise ConfigurationError(f"ISSUER_SMTP_SECURITY must be one of {', '.join(SMTP_SECURITY)}, not {value!r}")
    return security


DEFAULT_INLINE_ISSUANCE_MAX_VEHICLES = 20


def _count(name: str, value: str | None, default: int) -> int:
    if value is None or value.strip() == "":
        return default
    try:
        count = int(value.strip())
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, not {value!r}") from None
    if count < 0:
        raise ConfigurationError(f"{name} must be 0 or more, not {count}")
    return count


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _log_format(value: str | None, *, production: bool) -> str:
    chosen = (value or "").strip().lower() or ("json" if production else "text")
    if chosen not in ("json", "text"):
        raise ConfigurationError(f"ISSUER_LOG_FORMAT must be json or text, not {value!r}")
    return chosen


def _log_level(value: str | None) -> str:
    level = (value or "").strip().upper() or "INFO"
    if level not in LOG_LEVELS:
        raise ConfigurationError(f"ISSUER_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {value!r}")
    return level


MAX_TRUSTED_PROXIES = 5


def _trusted_proxies(value: str | None) -> int:
    """How many reverse proxies in front of the app append to X-Forwarded-For (0: none, the
    header is ignored, since any client could write it)."""
    if value is None or value.strip() == "":
        return 0
    try:
        count = int(value.strip())
    except ValueError:
        raise ConfigurationError(f"ISSUER_TRUSTED_PROXIES must be a number of proxies, not {value!r}") from None
    if not 0 <= count <= MAX_TRUSTED_PROXIES:
        raise ConfigurationError(f"ISSUER_TRUSTED_PROXIES must be between 0 and {MAX_TRUSTED_PROXIES}, not {count}")
    return count


def _flag(value: str | None, *, default: bool) -> bool:
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() not in {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    secret_key: str = DEVELOPMENT_SECRET_KEY
    keys_dir: Path = PROJECT_ROOT / "keys"
    key_passphrase: str | None = None
    public_url: str = DEFAULT_PUBLIC_URL
    ratelimit_enabled: bool = True
    # Shared state of the workers (rate limits; the job queue): a redis:// URL, or None.
    redis_url: str | None = None
    trusted_proxies: int = 0  # reverse proxies whose X-Forwarded-For is believed
    production: bool = False
    max_content_length: int = 10 * 1024 * 1024
    # Notifications (issuer.services.notifications): without an SMTP host, mail stays in the outbox.
    smtp_host: str | None = None
    smtp_port: int = DEFAULT_SMTP_PORT
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_security: str = "starttls"  # one of SMTP_SECURITY
    mail_from: str = DEFAULT_MAIL_FROM
    # Without redis_url, issuance runs inline.
    queue_name: str = "issuer-issuance"  # several deployments may share one Redis
    log_format: str = "text"  # "json" or "text"; json by default in production
    log_level: str = "INFO"
    # With a queue, letters of up to this many vehicles are still sealed inline (about a second).
    inline_issuance_max_vehicles: int = DEFAULT_INLINE_ISSUANCE_MAX_VEHICLES

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        production = (env.get("ISSUER_ENV") or "").strip().lower() == "production"
        settings = cls(
            database_url=env.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
            secret_key=env.get("SECRET_KEY") or DEVELOPMENT_SECRET_KEY,
            keys_dir=Path(env.get("ISSUER_KEYS_DIR") or PROJECT_ROOT / "keys"),
            key_passphrase=env.get("ISSUER_KEY_PASSPHRASE") or None,
            public_url=(env.get("ISSUER_PUBLIC_URL") or DEFAULT_PUBLIC_URL).rstrip("/"),
            ratelimit_enabled=_flag(env.get("RATELIMIT_ENABLED"), default=True),
            production=production,
            redis_url=(env.get("REDIS_URL") or "").strip() or None,
            trusted_proxies=_trusted_proxies(env.get("ISSUER_TRUSTED_PROXIES")),
            smtp_host=(env.get("ISSUER_SMTP_HOST") or "").strip() or None,
            smtp_port=_port(env.get("ISSUER_SMTP_PORT")),
            smtp_user=env.get("ISSUER_SMTP_USER") or None,
            smtp_password=env.get("ISSUER_SMTP_PASSWORD") or None,
            smtp_security=_smtp_security(env.get("ISSUER_SMTP_SECURITY")),
            mail_from=(env.get("ISSUER_MAIL_FROM") or "").strip() or DEFAULT_MAIL_FROM,
            queue_name=(env.get("ISSUER_QUEUE_NAME") or "").strip() or "issuer-issuance",
            log_format=_log_format(env.get("ISSUER_LOG_FORMAT"), production=production),
            log_level=_log_level(env.get("ISSUER_LOG_LEVEL")),
            inline_issuance_max_vehicles=_count(
                "ISSUER_INLINE_ISSUANCE_MAX_VEHICLES",
                env.get("ISSUER_INLINE_ISSUANCE_MAX_VEHICLES"),
                DEFAULT_INLINE_ISSUANCE_MAX_VEHICLES,
            ),
        )
        settings.check()
        return settings

    @property
    def seal_passphrase(self) -> str:
        return self.key_passphrase or DEVELOPMENT_KEY_PASSPHRASE

    def check(self) -> None:
        """Refuse to run production with development secrets."""
        if not self.production:
            return
        if self.secret_key == DEVELOPMENT_SECRET_KEY or len(self.secret_key) < 32:
            raise ConfigurationError("production needs SECRET_KEY set to a random value of 32+ characters")
        if not self.key_passphrase or self.key_passphrase == DEVELOPMENT_KEY_PASSPHRASE:
            raise ConfigurationError("production needs ISSUER_KEY_PASSPHRASE to encrypt seal keys at rest")
