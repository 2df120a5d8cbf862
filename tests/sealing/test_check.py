"""The seal check: authentic only when intact, valid, whole-file and made by a trusted, live key."""
from __future__ import annotations

import datetime as dt
import random
from io import BytesIO

import pytest
import weasyprint
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils import embed
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import copy_into_new_writer
from pyhanko.sign import signers
from pyhanko.sign.fields import SigFieldSpec, append_signature_field
from pyhanko_certvalidator.registry import SimpleCertificateStore

from issuer.sealing.check import SignatureCheck, TrustedKey, check_pdf, trusted_key_from_published
from issuer.sealing.keys import certificate_pem, generate_material
from issuer.sealing.signer import PadesSealer, SigningKey

SIGNED_AT = dt.datetime(2026, 9, 15, 4, 30, 12, tzinfo=dt.UTC)
KEY_CREATED = SIGNED_AT - dt.timedelta(days=30)
LETTER_JSON = b'{"number": "L-2026-000123", "vins": ["LGXC74C43S0123456"]}'
MAKER = "Test Motor Co., Ltd."


def _seal(pdf: bytes, key: SigningKey, *, at: dt.datetime = SIGNED_AT, attachment: bytes = LETTER_JSON) -> bytes:
    return PadesSealer().seal(
        pdf,
        key=key,
        attachment=attachment,
        attachment_name="letter.json",
        signer_name=MAKER,
        reason="After-sales Maintenance Service Confirmation Letter L-2026-000123",
        location="CN",
        signing_time=at,
    )


def _new_key(kid: str, *, name: str = MAKER, uscc: str = "91110000100000000X") -> SigningKey:
    material = generate_material(name=name, uscc=uscc, now=KEY_CREATED)
    return SigningKey(kid=kid, private_key=material.private_key, certificate=material.certificate)


def _trusted(key: SigningKey, manufacturer: str = "TMC", *, retired_at: dt.datetime | None = None) -> TrustedKey:
    return TrustedKey(
        kid=key.kid,
        manufacturer=manufacturer,
        certificate=key.certificate,
        not_before=key.certificate.not_valid_before_utc,
        retired_at=retired_at,
    )


@pytest.fixture(scope="module")
def unsigned_pdf() -> bytes:
    return weasyprint.HTML(string="<h1>Confirmation letter</h1><p>LGXC74C43S0123456</p>").write_pdf()


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return _new_key("TMC-0123456789abcdef")


@pytest.fixture(scope="module")
def sealed(unsigned_pdf: bytes, key: SigningKey) -> bytes:
    return _seal(unsigned_pdf, key)


@pytest.fixture(scope="module")
def trusted(key: SigningKey) -> list[TrustedKey]:
    other_maker = _new_key("OTH-fedcba9876543210", name="Other Motor Co.", uscc="91310000200000000Y")
    return [_trusted(other_maker, "OTH"), _trusted(key)]


def _assert_not_authentic(check: SignatureCheck) -> None:
    assert not check.authentic
    assert check.problems, "a check that is not authentic must say why"
    assert all(isinstance(p, str) and p for p in check.problems)


def test_sealed_letter_is_authentic_with_the_right_trusted_key(sealed, trusted, key):
    check = check_pdf(sealed, trusted=trusted)

    assert check.authentic
    assert (check.signed, check.intact, check.valid, check.covers_whole_file) == (True, True, True, True)
    assert check.key_id == key.kid
    assert check.manufacturer == "TMC"
    assert check.signer == key.certificate.subject.rfc4514_string()
    assert check.signing_time == SIGNED_AT
    assert check.key_valid_at_signing
    assert check.attachment == LETTER_JSON
    assert check.problems == ()


def test_attachment_is_looked_up_by_name(sealed, trusted):
    check = check_pdf(sealed, trusted=trusted, attachment_name="other.json")

    assert check.authentic
    assert check.attachment is None


def _flip(pdf: bytes, offset: int, mask: int = 0x01) -> bytes:
    changed = bytearray(pdf)
    changed[offset] ^= mask
    return bytes(changed)


def _named_offsets(pdf: bytes) -> dict[str, int]:
    """Offsets of the places a forger would aim at."""
    reader = PdfFileReader(BytesIO(pdf))
    (signature,) = reader.embedded_signatures
    _, gap_start, gap_end, _ = (int(v) for v in signature.byte_range)
    der_length = len(signature.pkcs7_content.rstrip(b"\x00"))
    page_stream = pdf.index(b"stream\n") + len(b"stream\n") + 3
    attachment_dict = pdf.index(b"/Type /EmbeddedFile")
    attachment_stream = pdf.index(b"stream\n", attachment_dict) + len(b"stream\n") + 2
    return {
        "header": 5,
        "page content stream": page_stream,
        "attachment stream": attachment_stream,
        "attachment dictionary": attachment_dict + 3,
        "byte range array": pdf.index(b"/ByteRange") + len(b"/ByteRange [0 ") + 1,
        "last byte before the signature": gap_start - 1,
        "opening < of the signature": gap_start,
        "first hex digit of the signature": gap_start + 1,
        "inside the signature container": gap_start + 1 + der_length,
        "zero padding of the signature container": gap_end - 10,
        "closing > of the signature": gap_end - 1,
        "first byte after the signature": gap_end,
        "%%EOF marker": len(pdf) - 4,
        "last byte of the file": len(pdf) - 1,
    }


@pytest.mark.parametrize(
    "place",
    [
        "header",
        "page content stream",
        "attachment stream",
        "attachment dictionary",
        "byte range array",
        "last byte before the signature",
        "opening < of the signature",
        "first hex digit of the signature",
        "inside the signature container",
        "zero padding of the signature container",
        "closing > of the signature",
        "first byte after the signature",
        "%%EOF marker",
        "last byte of the file",
    ],
)
@pytest.mark.parametrize("mask", [0x01, 0x20, 0xFF])
def test_one_byte_change_is_caught(sealed, trusted, place, mask):
    offset = _named_offsets(sealed)[place]

    check = check_pdf(_flip(sealed, offset, mask), trusted=trusted)

    _assert_not_authentic(check)
    assert not (check.signed and check.intact and check.valid and check.covers_whole_file)


def test_one_byte_change_at_random_offsets_across_the_file_is_always_caught(sealed, trusted):
    rng = random.Random(20260915)  # fixed: the same offsets every run
    offsets = sorted(rng.sample(range(len(sealed)), 24))

    missed = []
    for offset in offsets:
        check = check_pdf(_flip(sealed, offset, rng.randrange(1, 256)), trusted=trusted)
        if check.authentic or not check.problems:
            missed.append(offset)

    assert missed == []


def test_case_change_in_the_signer_identifier_is_caught(sealed, trusted, key):
    """pyHanko matches the signer identifier's name case-insensitively; a letter's check must not."""
    signature = PdfFileReader(BytesIO(sealed)).embedded_signatures[0]
    gap_start = int(signature.byte_range[1])
    sid_issuer = signature.signer_info["sid"].chosen["issuer"].dump()
    letter = sid_issuer.index(b"Test") + 1  # the 'e' of "Test"
    sid_offset = signature.pkcs7_content.index(signature.signer_info.dump()) + signature.signer_info.dump().index(
        sid_issuer
    )
    hex_offset = gap_start + 1 + 2 * (sid_offset + letter)
    assert sealed[hex_offset : hex_offset + 2] == b"65"

    check = check_pdf(sealed[:hex_offset] + b"45" + sealed[hex_offset + 2 :], trusted=trusted)  # 'e' -> 'E'

    _assert_not_authentic(check)
    assert not check.valid


def test_container_length_stretched_over_its_zero_padding_is_caught(sealed, trusted):
    """A lenient (BER) reader would read the longer container and skip the zeros it swallowed."""
    signature = PdfFileReader(BytesIO(sealed)).embedded_signatures[0]
    gap_start = int(signature.byte_range[1])
    raw = signature.pkcs7_content
    assert raw[:2] == b"\x30\x82"
    length = int.from_bytes(raw[2:4], "big")
    assert len(raw) - 4 - length > 0x100, "the reserved space leaves room to stretch into"
    stretched = f"{length + 0x100:04X}".encode()
    at = gap_start + 1 + 4

    check = check_pdf(sealed[:at] + stretched + sealed[at + 4 :], trusted=trusted)

    _assert_not_authentic(check)
    assert not check.valid


def test_case_change_of_a_hex_digit_of_the_signature_is_caught(sealed, trusted):
    """PDF reads <ab> and <AB> alike; a sealed letter's bytes may not change even so."""
    signature = PdfFileReader(BytesIO(sealed)).embedded_signatures[0]
    gap_start = int(signature.byte_range[1])
    der_hex_end = gap_start + 1 + 2 * len(signature.pkcs7_content.rstrip(b"\x00"))
    at = next(i for i in range(gap_start + 1, der_hex_end) if sealed[i : i + 1] in b"ABCDEF")

    check = check_pdf(_flip(sealed, at, 0x20), trusted=trusted)

    _assert_not_authentic(check)
    assert not check.intact


def _ca_issued_key() -> SigningKey:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Seal CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(KEY_CREATED)
        .not_valid_after(KEY_CREATED + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, MAKER)]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(KEY_CREATED).not_valid_after(KEY_CREATED + dt.timedelta(days=365))
        .sign(ca_key, hashes.SHA256())
    )
    return SigningKey(kid="TMC-imported", private_key=key, certificate=leaf, chain=(ca,))


def test_change_inside_an_embedded_chain_certificate_is_caught(unsigned_pdf):
    """The chain plays no part in trust here, but its bytes are part of the letter all the same."""
    key = _ca_issued_key()
    sealed = _seal(unsigned_pdf, key)
    assert check_pdf(sealed, trusted=[_trusted(key)]).authentic
    signature = PdfFileReader(BytesIO(sealed)).embedded_signatures[0]
    ca_der = key.chain[0].public_bytes(serialization.Encoding.DER)
    ca_at = signature.pkcs7_content.index(ca_der) + len(ca_der) - 3  # in the CA's own signature
    at = int(signature.byte_range[1]) + 1 + 2 * ca_at
    digit = sealed[at : at + 1]
    other = b"1" if digit != b"1" else b"2"

    check = check_pdf(sealed[:at] + other + sealed[at + 1 :], trusted=[_trusted(key)])

    _assert_not_authentic(check)
    assert not check.valid
    assert any("does not bind" in p for p in check.problems)


@pytest.mark.parametrize("appended", [b"\n", b"%garbage\n", bytes(range(256)) * 20])
def test_bytes_appended_after_eof_mean_the_seal_no_longer_covers_the_whole_file(sealed, trusted, appended):
    check = check_pdf(sealed + appended, trusted=trusted)

    _assert_not_authentic(check)
    assert check.signed
    assert check.intact
    assert not check.covers_whole_file
    assert any("appended" in p for p in check.problems)


def test_an_empty_signature_field_added_in_a_new_revision_breaks_whole_file_coverage(sealed, trusted):
    writer = IncrementalPdfFileWriter(BytesIO(sealed))
    append_signature_field(writer, SigFieldSpec(sig_field_name="Extra", box=(10, 10, 100, 40)))
    updated = BytesIO()
    writer.write(updated)

    check = check_pdf(updated.getvalue(), trusted=trusted)

    _assert_not_authentic(check)
    assert check.intact
    assert not check.covers_whole_file
    assert any("revision" in p for p in check.problems)


def test_a_second_signature_by_another_key_breaks_whole_file_coverage(sealed, trusted, key):
    mallory = _new_key("MALLORY-1")
    signer = signers.SimpleSigner(
        signing_cert=asn1_x509.Certificate.load(mallory.certificate.public_bytes(serialization.Encoding.DER)),
        signing_key=asn1_keys.PrivateKeyInfo.load(
            mallory.private_key.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        ),
        cert_registry=SimpleCertificateStore(),
    )
    countersigned = signers.sign_pdf(
        IncrementalPdfFileWriter(BytesIO(sealed)),
        signers.PdfSignatureMetadata(field_name="Second", md_algorithm="sha256"),
        signer=signer,
    ).getvalue()

    check = check_pdf(countersigned, trusted=trusted)

    _assert_not_authentic(check)
    assert check.key_id == key.kid  # the check judges the seal: the first signature
    assert not check.covers_whole_file
    assert any("2 signatures" in p for p in check.problems)


def test_attachment_replaced_in_a_later_revision_is_not_returned(sealed, trusted):
    writer = IncrementalPdfFileWriter(BytesIO(sealed))
    names = writer.root["/Names"]["/EmbeddedFiles"]["/Names"]
    forged = embed.EmbeddedFileObject.from_file_data(writer, data=b'{"number": "FORGED"}')
    spec = embed.FileSpec(file_spec_string="letter.json", embedded_data=forged).as_pdf_object()
    names[1] = writer.add_object(spec)
    writer.update_container(names)
    updated = BytesIO()
    writer.write(updated)
    assert PdfFileReader(BytesIO(updated.getvalue())).root["/Names"]["/EmbeddedFiles"]["/Names"][1]["/EF"][
        "/F"
    ].data == b'{"number": "FORGED"}'

    check = check_pdf(updated.getvalue(), trusted=trusted)

    _assert_not_authentic(check)
    assert check.attachment == LETTER_JSON


def test_letter_sealed_by_a_key_that_is_not_trusted_is_not_authentic(unsigned_pdf, trusted):
    impostor = _new_key("TMC-0123456789abcdef")  # the same name, kid and subject, another key
    forged = _seal(unsigned_pdf, impostor)

    check = check_pdf(forged, trusted=trusted)

    _assert_not_authentic(check)
    assert (check.intact, check.valid, check.covers_whole_file) == (True, True, True)
    assert check.key_id is None
    assert check.manufacturer is None
    assert not check.key_valid_at_signing
    assert any("not trusted" in p and "kid=TMC-0123456789abcdef" in p for p in check.problems)


def test_letter_is_not_authentic_when_only_another_manufacturers_key_is_trusted(sealed, trusted):
    others_only = [k for k in trusted if k.manufacturer != "TMC"]

    check = check_pdf(sealed, trusted=others_only)

    _assert_not_authentic(check)
    assert check.key_id is None


def test_letter_is_not_authentic_when_no_key_is_trusted(sealed):
    check = check_pdf(sealed, trusted=[])

    _assert_not_authentic(check)
    assert check.key_id is None


def test_letter_sealed_before_its_key_was_retired_stays_authentic(sealed, key):
    retired = [_trusted(key, retired_at=SIGNED_AT + dt.timedelta(days=90))]

    check = check_pdf(sealed, trusted=retired)

    assert check.authentic
    assert check.key_valid_at_signing


def test_letter_sealed_in_the_second_its_key_was_retired_stays_authentic(sealed, key):
    check = check_pdf(sealed, trusted=[_trusted(key, retired_at=SIGNED_AT + dt.timedelta(microseconds=1))])

    assert check.authentic


def test_letter_sealed_after_its_key_was_retired_is_not_authentic(unsigned_pdf, key):
    retired_at = SIGNED_AT - dt.timedelta(hours=1)
    late = _seal(unsigned_pdf, key, at=SIGNED_AT)

    check = check_pdf(late, trusted=[_trusted(key, retired_at=retired_at)])

    _assert_not_authentic(check)
    assert check.key_id == key.kid
    assert not check.key_valid_at_signing
    assert (check.intact, check.valid, check.covers_whole_file) == (True, True, True)
    assert any("retired" in p for p in check.problems)


@pytest.mark.parametrize(
    "signed_at", [KEY_CREATED - dt.timedelta(days=1), KEY_CREATED + dt.timedelta(days=365 * 6)], ids=["early", "late"]
)
def test_letter_dated_outside_the_certificate_validity_is_not_authentic(unsigned_pdf, key, signed_at):
    check = check_pdf(_seal(unsigned_pdf, key, at=signed_at), trusted=[_trusted(key)])

    _assert_not_authentic(check)
    assert not check.key_valid_at_signing


def test_letter_dated_before_the_published_not_before_is_not_authentic(sealed, key):
    late_start = TrustedKey(kid=key.kid, manufacturer="TMC", certificate=key.certificate,
                            not_before=SIGNED_AT + dt.timedelta(seconds=1), retired_at=None)

    check = check_pdf(sealed, trusted=[late_start])

    _assert_not_authentic(check)
    assert not check.key_valid_at_signing


def _encrypted(pdf: bytes) -> bytes:
    writer = copy_into_new_writer(PdfFileReader(BytesIO(pdf)))
    writer.encrypt("owner-secret", "user-secret")
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda sealed, unsigned: b"", id="empty"),
        pytest.param(lambda sealed, unsigned: b"\x00\x01garbage\xff" * 100, id="garbage"),
        pytest.param(lambda sealed, unsigned: random.Random(7).randbytes(5000), id="random bytes"),
        pytest.param(lambda sealed, unsigned: b"%PDF-1.7\n%%EOF\n", id="header only"),
        pytest.param(lambda sealed, unsigned: sealed[: len(sealed) // 3], id="truncated to a third"),
        pytest.param(lambda sealed, unsigned: sealed[:-7], id="truncated end"),
        pytest.param(lambda sealed, unsigned: unsigned, id="unsigned"),
        pytest.param(lambda sealed, unsigned: _encrypted(unsigned), id="encrypted"),
        pytest.param(lambda sealed, unsigned: _encrypted(sealed), id="encrypted copy of a sealed letter"),
    ],
)
def test_bad_input_gives_an_unsigned_result_with_problems_and_never_raises(sealed, unsigned_pdf, trusted, make):
    check = check_pdf(make(sealed, unsigned_pdf), trusted=trusted)

    _assert_not_authentic(check)
    assert not check.signed
    assert (check.intact, check.valid, check.covers_whole_file) == (False, False, False)
    assert check.key_id is None
    assert check.attachment is None


def test_trusted_key_is_read_from_a_published_key_entry(key):
    retired_at = SIGNED_AT + dt.timedelta(days=1)
    entry = {
        "kid": key.kid,
        "manufacturer": "TMC",
        "alg": "ECDSA-secp256r1-SHA256",
        "not_before": key.certificate.not_valid_before_utc.isoformat(),
        "retired_at": retired_at.isoformat(),
        "certificate": certificate_pem(key.certificate),
    }

    trusted = trusted_key_from_published(entry)

    assert trusted == TrustedKey(kid=key.kid, manufacturer="TMC", certificate=key.certificate,
                                 not_before=key.certificate.not_valid_before_utc, retired_at=retired_at)
    assert trusted_key_from_published({**entry, "retired_at": None}).retired_at is None
