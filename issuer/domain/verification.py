"""What each verification finding means, in plain Chinese and English."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

VERIFICATION_TEXT: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "NOT_SIGNED": (
            "文件没有电子签章，或不是可读的PDF文件。",
            "The file carries no digital seal, or is not a readable PDF.",
        ),
        "CONTENT_ALTERED": ("签章后文件内容被修改。", "The content was changed after it was sealed."),
        "SIGNATURE_INVALID": ("电子签章的密码学校验未通过。", "The digital seal does not verify cryptographically."),
        "CHANGED_AFTER_SEALING": (
            "签章之后文件被追加了内容，已不是签发时的文件。",
            "Data was added to the file after it was sealed; it is not the file as issued.",
        ),
        "UNKNOWN_KEY": (
            "签章所用密钥不是本系统公布的任何制造商印章密钥。",
            "The seal was not made with any published manufacturer key.",
        ),
        "KEY_NOT_VALID_AT_SIGNING": (
            "签章时该密钥不在有效期内或已停用。",
            "The key was not valid, or already retired, when the seal was made.",
        ),
        "KEY_NOT_MANUFACTURERS": (
            "签章密钥不属于确认书上署名的制造商。",
            "The sealing key does not belong to the manufacturer named on the letter.",
        ),
        "NO_LETTER_DATA": (
            "文件中没有确认书数据，无法识别确认书编号。",
            "The file holds no letter data; its number cannot be read.",
        ),
        "NOT_ISSUED_HERE": ("本系统没有签发过该编号的确认书。", "No letter with this number was issued here."),
        "DIFFERENT_FROM_ISSUED": (
            "文件与签发的确认书不是同一文件（哈希值不一致）。",
            "The file is not the one issued (its SHA-256 differs).",
        ),
        "REVOKED": ("确认书已被撤销。", "The letter has been revoked."),
        "SUPERSEDED": ("确认书已被新的确认书替代。", "The letter has been superseded by a newer one."),
        "EXPIRED": ("确认书已过有效期。", "The letter has expired."),
    }
)
