"""The child process of the crash tests: it approves one request and kills itself with SIGKILL at
one chosen step of the issuance (tests/security/test_crash_safety.py runs it).

It is the real app (``create_app`` on the given database) answering the real decision call
(``POST /api/v1/requests/<id>/decision``). The crash point is injected from here, from the
outside: a function of the issuance path is wrapped so that, when it is reached, the process
sends itself SIGKILL, or an SQLAlchemy event (public API) does the same around a commit. The
production code has no test hook. The steps, in the order an issuance goes through them:

==========================  ========================================================================
``request_locked``          the request is read and its row locked; nothing written yet
``number_allocated``        the counter is incremented (the reservation's transaction is open)
``vins_claimed``            pending letter, its vehicles and outlets flushed, the VINs claimed
``decision_recorded``       the decision's audit entry written: the reservation's last write
``reservation_committing``  every reservation row sent; the process dies just before COMMIT
``reservation_committed``   just after the reservation's COMMIT: a pending letter, no PDF
``key_loaded``              the seal key read and decrypted, before rendering
``rendering``               inside ``render_letter``: laid out, the PDF not yet written
``rendered``                the unsigned PDF rendered, before sealing
``sealing``                 inside the seal: the signature value being computed
``sealed``                  the sealed PDF made, before it is stored
``storing``                 the PDF being assigned to the letter row (in memory only)
``issue_recorded``          letter row (PDF, ``valid``) flushed and its audit entry written, uncommitted
``key_use_recorded``        the key's use recorded: the completion's last write
``completion_committing``   every completion row sent; the process dies just before COMMIT
``completion_committed``    just after the completion's COMMIT: the letter is issued
==========================  ========================================================================

Exit status: killed by SIGKILL at the step, or ``NOT_REACHED`` (the step was never reached, so
the test is wrong), or ``FAILED`` when the decision raised.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from issuer import clock, create_app
from issuer.config import Settings
from issuer.models import Letter
from issuer.rendering import pdf as rendering
from issuer.sealing import signer as sealing
from issuer.services import audit, letters

CRASH_POINTS = (
    "request_locked",
    "number_allocated",
    "vins_claimed",
    "decision_recorded",
    "reservation_committing",
    "reservation_committed",
    "key_loaded",
    "rendering",
    "rendered",
    "sealing",
    "sealed",
    "storing",
    "issue_recorded",
    "key_use_recorded",
    "completion_committing",
    "completion_committed",
)
NOT_REACHED = 3
FAILED = 4


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _after(owner: Any, name: str, when: Callable[..., bool] = lambda *a, **k: True) -> None:
    """Replace ``owner.name`` with a wrapper that runs it, then dies if ``when(*args, **kwargs)``."""
    real = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        if when(*args, **kwargs):
            die()
        return result

    setattr(owner, name, wrapper)


class _Progress:
    """Where the issuance has got, so the commit events know which commit they see."""

    reserved = False  # the reservation's rows are written (its transaction is open)
    sealed = False  # the PDF is sealed: the next commit is the completion's

    def reserving(self) -> bool:
        return self.reserved and not self.sealed

    def completing(self) -> bool:
        return self.sealed


def install(crash_point: str) -> None:
    """Arm ``crash_point`` (one of CRASH_POINTS) in this process."""
    if crash_point not in CRASH_POINTS:
        raise ValueError(f"unknown crash point {crash_point!r}")
    progress = _Progress()

    real_reserve = letters._reserve_letter

    def reserve(*args: Any, **kwargs: Any) -> Any:
        letter = real_reserve(*args, **kwargs)
        progress.reserved = True
        return letter

    letters._reserve_letter = reserve
    real_seal = sealing.PadesSealer.seal

    def seal(self: Any, *args: Any, **kwargs: Any) -> bytes:
        sealed = real_seal(self, *args, **kwargs)
        progress.sealed = True
        return sealed

    sealing.PadesSealer.seal = seal  # type: ignore[method-assign]

    def audited(action: str) -> Callable[..., bool]:
        return lambda *args, **kwargs: kwargs.get("action") == action

    if crash_point == "request_locked":
        _after(letters, "_staff_request")
    elif crash_point == "number_allocated":
        _after(letters, "allocate_number")
    elif crash_point == "vins_claimed":
        _after(letters, "_reserve_letter")
    elif crash_point == "decision_recorded":
        _after(audit, "record", audited("request.decided"))
    elif crash_point.endswith(("_committing", "_committed")):
        # The commit of the reservation (its rows written, nothing sealed yet) or the completion's.
        ours = progress.completing if crash_point.startswith("completion") else progress.reserving
        if crash_point.endswith("_committing"):
            event.listen(Engine, "commit", lambda _connection: ours() and die())
        else:
            event.listen(Session, "after_commit", lambda _session: ours() and die())

    elif crash_point == "key_loaded":
        _after(letters, "signing_key_for")
    elif crash_point == "rendering":
        _after(rendering, "_layout")
    elif crash_point == "rendered":
        _after(letters, "render_letter")
    elif crash_point == "sealing":
        real_sign = sealing._KeySigner.async_sign_raw

        async def sign(self: Any, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
            if not dry_run:
                die()
            return await real_sign(self, data, digest_algorithm, dry_run)

        sealing._KeySigner.async_sign_raw = sign  # type: ignore[method-assign]
    elif crash_point == "sealed":
        _after(sealing.PadesSealer, "seal")
    elif crash_point == "storing":
        event.listen(Letter.pdf, "set", lambda *args: die())
    elif crash_point == "issue_recorded":
        _after(audit, "record", audited("letter.issued"))
    elif crash_point == "key_use_recorded":
        _after(audit, "record", audited("key.used"))


def run(
    *,
    crash_point: str,
    database_url: str,
    keys_dir: str,
    passphrase: str,
    token: str,
    request_id: int,
    today: str,
) -> None:
    """Approve every eligible vehicle of the request through the API, dying at ``crash_point``."""
    install(crash_point)
    settings = Settings(
        database_url=database_url,
        secret_key="crash-child-" + os.urandom(8).hex(),
        keys_dir=Path(keys_dir),
        key_passphrase=passphrase,
        public_url="http://issuer.test",
        ratelimit_enabled=False,
    )
    app = create_app(settings)
    with clock.frozen(dt.date.fromisoformat(today)):
        answer = app.test_client().post(
            f"/api/v1/requests/{request_id}/decision",
            json={"approve": "all_eligible"},
            headers={"Authorization": f"Bearer {token}"},
        )
    print(f"crash point {crash_point} not reached: {answer.status_code} {answer.get_data(as_text=True)}")
    sys.stdout.flush()
    os._exit(NOT_REACHED if answer.status_code == 200 else FAILED)


if __name__ == "__main__":  # by hand: python -m tests.security.crash_child POINT URL KEYS PASS TOKEN ID DATE
    point, url, keys, passphrase_arg, token_arg, request_arg, today_arg = sys.argv[1:8]
    run(
        crash_point=point,
        database_url=url,
        keys_dir=keys,
        passphrase=passphrase_arg,
        token=token_arg,
        request_id=int(request_arg),
        today=today_arg,
    )
