"""SQLAlchemy models, one module per aggregate. Importing this package registers them all."""

from issuer.models.account import ApiToken, Role, User
from issuer.models.exporter import Exporter, ExporterBlock
from issuer.models.manufacturer import Manufacturer, ManufacturerType, ManufacturerWmi
from issuer.models.outlet import Outlet, OutletVersion
from issuer.models.registry import RegisteredVehicle
from issuer.models.request import LetterRequest, RequestStatus, RequestVehicle

__all__ = [
    "ApiToken",
    "Exporter",
    "ExporterBlock",
    "LetterRequest",
    "Manufacturer",
    "ManufacturerType",
    "ManufacturerWmi",
    "Outlet",
    "OutletVersion",
    "RegisteredVehicle",
    "RequestStatus",
    "RequestVehicle",
    "Role",
    "User",
]
