"""Private file storage for KYC documents.

Files live under ``settings.PRIVATE_MEDIA_ROOT``, outside STATIC_ROOT and MEDIA_ROOT, and the
storage has **no base URL**: ``url()`` raises, so no template or serializer can ever link to a
document by accident. The only way out is the staff-only, permission-checked view
``accounts:kyc_document``.
"""
from __future__ import annotations

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.utils.functional import cached_property


class PrivateStorage(FileSystemStorage):
    def __init__(self) -> None:
        super().__init__(file_permissions_mode=0o600, directory_permissions_mode=0o700)

    @cached_property
    def base_location(self):
        return settings.PRIVATE_MEDIA_ROOT

    @cached_property
    def base_url(self):  # no public URL, ever
        return None

    def url(self, name):
        raise NotImplementedError("Private files have no URL; serve them through a permission-checked view.")


def private_storage() -> PrivateStorage:
    """Callable used by ``FileField(storage=...)`` so migrations do not freeze a path."""
    return PrivateStorage()
