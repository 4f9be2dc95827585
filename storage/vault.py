"""The vault: the one entry point the portal uses to store and read case files.

It composes a key provider (data keys wrapped per case), the segment cipher and the S3
object store. Plaintext exists only in this process's memory, one segment at a time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from storage.cipher import (
    HEADER_BYTES,
    ObjectBinding,
    SegmentCipher,
    check_header,
    decrypt_span,
    decrypt_stream,
    encrypt_stream,
    plaintext_size,
    segment_span,
)
from storage.errors import IntegrityError
from storage.keycache import DataKeyCache, HeaderCache
from storage.keyprovider import KeyProvider
from storage.keys import build_key_provider
from storage.objectstore import (
    ObjectHead,
    ObjectInfo,
    PendingUpload,
    S3ObjectStore,
    build_s3_client,
)
from storage.settings import StorageSettings
from storage.textcipher import SHARE_BYTES, TextCipher, derive_text_key

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_s3 import S3Client

OBJECT_PREFIX = "cases/"
READ_SIZE = 1024 * 1024
_CASE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_OBJECT_KEY = re.compile(r"cases/([A-Za-z0-9][A-Za-z0-9_.-]{0,127})/([0-9a-f]{32})")

Source = BinaryIO | Iterable[bytes] | bytes


@dataclass(frozen=True)
class StoredObject:
    """What :meth:`Vault.put` stored: its key, plaintext size and SHA-256, stored size."""

    object_key: str
    size: int
    sha256: str
    stored_size: int


class Vault:
    """Encrypts on the way in, decrypts and verifies on the way out."""

    def __init__(
        self,
        *,
        keys: KeyProvider,
        store: S3ObjectStore,
        segment_size: int = 64 * 1024,
        cache: DataKeyCache | None = None,
    ) -> None:
        self.keys = keys
        self.store = store
        self.segment_size = segment_size
        self.cache = cache if cache is not None else DataKeyCache()
        self.text_keys = DataKeyCache(max_entries=self.cache.max_entries, ttl=self.cache.ttl)
        self.headers = HeaderCache()

    # -- keys -----------------------------------------------------------------------------

    def new_case_key(self, case_id: str) -> bytes:
        """Create the data key of a new case; returns its wrapped form for the database."""
        data_key, wrapped = self.keys.generate_data_key(context=key_context(case_id))
        self.cache.put(case_id, wrapped, data_key)
        return wrapped

    def rewrap(self, wrapped_key: bytes, *, case_id: str) -> bytes:
        """Re-wrap a case's data key under the current KEK; objects are not touched."""
        return self.keys.rewrap(wrapped_key, context=key_context(case_id))

    def _data_key(self, case_id: str, wrapped_key: bytes) -> bytes:
        data_key = self.cache.get(case_id, wrapped_key)
        if data_key is None:
            data_key = self.keys.unwrap(wrapped_key, context=key_context(case_id))
            self.cache.put(case_id, wrapped_key, data_key)
        return data_key

    # -- sealed text (database columns) ---------------------------------------------------

    def new_text_share(self, *, case_id: str, wrapped_key: bytes) -> StoredObject:
        """Store a new random key share for the case's text columns (an object like any other).

        The share is half of what makes the case's text key: the database holds the wrapped
        data key, the bucket the share, and erasing the case deletes the share with its objects.
        """
        return self.put(
            case_id=case_id, wrapped_key=wrapped_key, source=secrets.token_bytes(SHARE_BYTES)
        )

    def text_cipher(
        self, *, case_id: str, wrapped_key: bytes, share_key: str, share_sha256: str
    ) -> TextCipher:
        """The cipher for the case's text columns; the derived key is cached like data keys.

        Raises
        ------
        ObjectNotFound
            The share is gone (the case was erased): the text can no longer be opened.
        IntegrityError
            The share was altered or belongs to another case.
        """
        cache_id = wrapped_key + b"\x00" + share_key.encode("ascii")
        text_key = self.text_keys.get(case_id, cache_id)
        if text_key is None:
            share = self.get(
                case_id=case_id, wrapped_key=wrapped_key, object_key=share_key, sha256=share_sha256
            )
            data_key = self._data_key(case_id, wrapped_key)
            text_key = derive_text_key(data_key, share=share, case_id=case_id)
            self.text_keys.put(case_id, cache_id, text_key)
        return TextCipher(text_key)

    # -- objects --------------------------------------------------------------------------

    def put(self, *, case_id: str, wrapped_key: bytes, source: Source) -> StoredObject:
        """Encrypt and store ``source`` as a new object of the case.

        Parameters
        ----------
        case_id
            The owning case; the object key is ``cases/<case_id>/<random id>``.
        wrapped_key
            The case's wrapped data key (from :meth:`new_case_key`).
        source
            A binary file object, an iterable of byte chunks, or bytes.

        Returns
        -------
        StoredObject
            The server-made object key, plaintext size and SHA-256, and stored size.
        """
        data_key = self._data_key(case_id, wrapped_key)
        object_id = uuid.uuid4().hex
        key = f"{case_prefix(case_id)}{object_id}"
        digest = hashlib.sha256()
        counted = _Counter()
        plaintext = counted.wrap(_chunks(source), digest)
        ciphertext = encrypt_stream(
            plaintext,
            data_key=data_key,
            binding=ObjectBinding(case_id, object_id),
            segment_size=self.segment_size,
        )
        stored_size = self.store.put_stream(key, ciphertext)
        return StoredObject(key, counted.total, digest.hexdigest(), stored_size)

    def open(
        self, *, case_id: str, wrapped_key: bytes, object_key: str, sha256: str | None = None
    ) -> Iterator[bytes]:
        """Stream an object's plaintext; the header and key are checked before returning.

        Raises
        ------
        ObjectNotFound
            No object under ``object_key``.
        IntegrityError
            Wrong key or case, or tampering; raised by the iterator for damage further in,
            and at the end of a full read when the plaintext SHA-256 differs from ``sha256``.
        """
        binding = object_binding(case_id, object_key)
        data_key = self._data_key(case_id, wrapped_key)
        chunks = self.store.get_stream(object_key, chunk_size=READ_SIZE)
        try:
            plaintext = decrypt_stream(chunks, data_key=data_key, binding=binding)
        except BaseException:
            _close(chunks)
            raise
        return _verified(plaintext, sha256, object_key)

    def get(
        self, *, case_id: str, wrapped_key: bytes, object_key: str, sha256: str | None = None
    ) -> bytes:
        """The whole plaintext of a (small) object, verified like :meth:`open`."""
        return b"".join(
            self.open(
                case_id=case_id, wrapped_key=wrapped_key, object_key=object_key, sha256=sha256
            )
        )

    def read_range(
        self, *, case_id: str, wrapped_key: bytes, object_key: str, start: int, end: int
    ) -> bytes:
        """Plaintext bytes ``[start, end)`` (end exclusive, clamped to the object's size).

        Only the segments covering the range are fetched (S3 Range GET) and authenticated.
        """
        if start < 0 or end < start:
            raise ValueError(f"invalid byte range [{start}, {end})")
        binding = object_binding(case_id, object_key)
        data_key = self._data_key(case_id, wrapped_key)
        header, stored_size = self._header(object_key)
        cipher = SegmentCipher.for_stored_object(data_key, header, binding)
        size = plaintext_size(stored_size, cipher.segment_size)
        end = min(end, size)
        if start >= end:
            return b""
        span = segment_span(start, end, plaintext_size=size, segment_size=cipher.segment_size)
        stored, _ = self.store.get_range(object_key, span.cipher_start, span.cipher_end)
        return decrypt_span(cipher, stored, span)

    def size(self, object_key: str) -> int:
        """Plaintext size of a stored object, from its stored size (no key needed)."""
        header, stored_size = self._header(object_key)
        return plaintext_size(stored_size, check_header(header))

    def _header(self, object_key: str) -> tuple[bytes, int]:
        """The object's encryption header and stored size, fetched once per object."""
        cached = self.headers.get(object_key)
        if cached is None:
            cached = self.store.get_range(object_key, 0, HEADER_BYTES)
            self.headers.put(object_key, *cached)
        return cached

    def delete(self, object_key: str) -> None:
        """Delete one object."""
        parse_object_key(object_key)
        self.headers.forget(object_key)
        self.store.delete(object_key)

    def erase_case(self, case_id: str) -> int:
        """Delete every object of a case and forget its cached key; returns the count.

        Together with the portal destroying the wrapped key, this crypto-shreds the case:
        copies of the ciphertext (backups, replicas) can no longer be decrypted.
        """
        self.cache.forget_case(case_id)
        self.text_keys.forget_case(case_id)
        return self.store.delete_prefix(case_prefix(case_id))

    def list_objects(self, prefix: str = OBJECT_PREFIX) -> Iterator[ObjectInfo]:
        """Stored objects under ``prefix`` (all vault objects by default)."""
        return self.store.list_objects(prefix)

    # -- backup and restore: ciphertext as stored, never decrypted ------------------------

    def export_object(self, object_key: str) -> tuple[ObjectHead, Iterator[bytes]]:
        """The stored (encrypted) bytes of an object and its ETag, for a backup copy."""
        parse_object_key(object_key)
        head = self.store.head(object_key)
        return head, self.store.get_stream(object_key, chunk_size=READ_SIZE)

    def import_object(self, object_key: str, ciphertext: Iterable[bytes]) -> int:
        """Store an exported object again under its own key; returns the bytes stored.

        The bytes are put back exactly as exported: the cipher binds them to their case and
        object id, so they decrypt only under the same key and with the same case key.
        """
        parse_object_key(object_key)
        return self.store.put_stream(object_key, ciphertext)

    def bucket_is_empty(self) -> bool:
        """True when the bucket holds nothing at all (or does not exist yet)."""
        return self.store.is_empty()

    def pending_uploads(self, prefix: str = OBJECT_PREFIX) -> Iterator[PendingUpload]:
        """Multipart uploads under ``prefix`` never completed nor aborted (a killed writer)."""
        return self.store.pending_uploads(prefix)

    def abort_upload(self, pending: PendingUpload) -> None:
        """Abort one unfinished multipart upload of a vault object."""
        parse_object_key(pending.key)
        self.store.abort_upload(pending)

    # -- operations -----------------------------------------------------------------------

    def check(self) -> None:
        """Raise :class:`StorageUnavailable` or :class:`KeyUnavailable` unless both answer."""
        self.store.check()
        self.keys.check()

    def ensure_bucket(self) -> None:
        """Create the bucket if missing (call at start when ``create_bucket`` is set)."""
        self.store.ensure_bucket()


def build_vault(
    settings: StorageSettings,
    *,
    s3_client: S3Client | None = None,
    kms_client: KMSClient | None = None,
    keys: KeyProvider | None = None,
) -> Vault:
    """The vault described by ``settings``, with injected clients when given. No I/O
    except reading the keyring file; none at all when ``keys`` is given (a restore checks
    a keyring before it becomes the configured one)."""
    store = S3ObjectStore(
        s3_client if s3_client is not None else build_s3_client(settings),
        bucket=settings.bucket,
        part_size=settings.part_size,
        max_concurrency=settings.upload_concurrency,
    )
    return Vault(
        keys=keys if keys is not None else build_key_provider(settings, kms_client),
        store=store,
        segment_size=settings.segment_size,
        cache=DataKeyCache(max_entries=settings.key_cache_size, ttl=settings.key_cache_ttl),
    )


def key_context(case_id: str) -> dict[str, str]:
    """The context every data key of ``case_id`` is wrapped with."""
    return {"case_id": check_case_id(case_id)}


def check_case_id(case_id: str) -> str:
    """Return ``case_id`` if it is safe inside an object key, else raise ``ValueError``."""
    if not _CASE_ID.fullmatch(case_id):
        raise ValueError(f"case id {case_id!r} must be 1-128 of A-Z a-z 0-9 . _ -")
    return case_id


def case_prefix(case_id: str) -> str:
    """``cases/<case_id>/``: where every object of the case lives."""
    return f"{OBJECT_PREFIX}{check_case_id(case_id)}/"


def parse_object_key(object_key: str) -> tuple[str, str]:
    """``(case_id, object_id)`` of a vault object key; ``ValueError`` for anything else."""
    match = _OBJECT_KEY.fullmatch(object_key)
    if match is None:
        raise ValueError(f"{object_key!r} is not a vault object key")
    return match.group(1), match.group(2)


def object_binding(case_id: str, object_key: str) -> ObjectBinding:
    """The cipher binding of ``object_key``, which must belong to ``case_id``."""
    owner, object_id = parse_object_key(object_key)
    if owner != case_id:
        raise IntegrityError(f"object {object_key!r} does not belong to case {case_id!r}")
    return ObjectBinding(case_id, object_id)


class _Counter:
    """Counts and hashes plaintext as it streams past."""

    def __init__(self) -> None:
        self.total = 0

    def wrap(self, chunks: Iterable[bytes], digest: hashlib._Hash) -> Iterator[bytes]:
        for chunk in chunks:
            digest.update(chunk)
            self.total += len(chunk)
            yield chunk


def _chunks(source: Source) -> Iterator[bytes]:
    if isinstance(source, bytes | bytearray | memoryview):
        yield bytes(source)
    elif hasattr(source, "read"):
        while chunk := source.read(READ_SIZE):
            yield chunk
    else:
        for chunk in source:
            if chunk:
                yield bytes(chunk) if not isinstance(chunk, bytes) else chunk


def _verified(plaintext: Iterator[bytes], sha256: str | None, object_key: str) -> Iterator[bytes]:
    digest = hashlib.sha256()
    for chunk in plaintext:
        digest.update(chunk)
        yield chunk
    if sha256 is not None and not hmac.compare_digest(digest.hexdigest(), sha256.lower()):
        raise IntegrityError(
            f"object {object_key!r} decrypted but its SHA-256 is not the one recorded at upload"
        )


def _close(chunks: Iterator[bytes]) -> None:
    close = getattr(chunks, "close", None)
    if callable(close):
        close()
