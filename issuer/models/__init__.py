"""SQLAlchemy models, one module per aggregate. Importing this package registers them all."""

from issuer.models.account import ApiToken, Role, User
from issuer.models.audit import GENESIS_HASH, AuditEntry, AuditHead
from issuer.models.exporter import Exporter, ExporterBlock
from issuer.models.idempotency import IdempotencyKey
from issuer.models.import_job import ImportJob, ImportState
from issuer.models.issuance_job import IssuanceJob, JobState
from issuer.models.letter import CoveredVin, Letter, LetterOutlet, LetterSequence, LetterStatus, LetterVehicle
from issuer.models.manufacturer import Manufacturer, ManufacturerType, ManufacturerWmi
from issuer.models.outbox import MessageState, OutboxMessage
from issuer.models.outlet import Outlet, OutletVersion
from issuer.models.registry import RegisteredVehicle
from issuer.models.request import LetterRequest, RequestStatus, RequestVehicle
from issuer.models.seal_key import SealKey

__all__ = [
    "GENESIS_HASH",
    "ApiToken",
    "AuditEntry",
    "AuditHead",
    "CoveredVin",
    "Exporter",
    "ExporterBlock",
    "IdempotencyKey",
    "ImportJob",
    "ImportState",
    "IssuanceJob",
    "JobState",
    "Letter",
    "LetterOutlet",
    "LetterRequest",
    "LetterSequence",
    "LetterStatus",
    "LetterVehicle",
    "Manufacturer",
    "ManufacturerType",
    "ManufacturerWmi",
    "MessageState",
    "OutboxMessage",
    "Outlet",
    "OutletVersion",
    "RegisteredVehicle",
    "RequestStatus",
    "RequestVehicle",
    "Role",
    "SealKey",
    "User",
]
