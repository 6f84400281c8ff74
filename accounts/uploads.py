"""Validation of uploaded KYC documents: size, and type by *content* (magic bytes).

The client's declared Content-Type and file extension are ignored — both are trivially
spoofed. Only JPEG, PNG and PDF are accepted, and the stored file gets the extension of the
type that was sniffed."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.core.files.uploadedfile import UploadedFile

from accounts.errors import AccountsError, AccountsErrorCode
from kk99.conf import kk99_setting

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"%PDF-", "application/pdf"),
)


def sniff_content_type(head: bytes) -> str | None:
    for magic, content_type in _SIGNATURES:
        if head.startswith(magic):
            return content_type
    return None


@dataclass(frozen=True)
class CheckedUpload:
    file: UploadedFile
    content_type: str
    size: int
    sha256: str


def upload_check(*, file: UploadedFile, field: str) -> CheckedUpload:
    """Raise a 4xx :class:`AccountsError` unless ``file`` is an allowed type within the size limit."""
    max_bytes = kk99_setting("KYC_UPLOAD_MAX_BYTES")
    if file.size is None or file.size > max_bytes:
        raise AccountsError(
            AccountsErrorCode.KYC_DOCUMENT_TOO_LARGE, f"{field}: the file is larger than {max_bytes} bytes.",
            status=413, field=field, max_bytes=max_bytes,
        )
    if file.size == 0:
        raise AccountsError(AccountsErrorCode.KYC_DOCUMENT_INVALID_TYPE, f"{field}: the file is empty.", field=field)
    file.seek(0)
    content_type = sniff_content_type(file.read(16))
    allowed = set(kk99_setting("KYC_UPLOAD_CONTENT_TYPES"))
    if content_type is None or content_type not in allowed:
        raise AccountsError(
            AccountsErrorCode.KYC_DOCUMENT_INVALID_TYPE, f"{field}: only JPEG, PNG or PDF files are accepted.",
            status=415, field=field, allowed=sorted(allowed),
        )
    digest = hashlib.sha256()
    file.seek(0)
    for chunk in file.chunks():
        digest.update(chunk)
    file.seek(0)
    return CheckedUpload(file=file, content_type=content_type, size=file.size, sha256=digest.hexdigest())
