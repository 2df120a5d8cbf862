from issuer import create_app
from issuer.config import Settings
from issuer.observability import configure_logging

settings = Settings.from_environment()
configure_logging(log_format=settings.log_format, level=settings.log_level)
app = create_app(settings)
