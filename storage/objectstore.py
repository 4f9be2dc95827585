"""The S3 object store: puts, gets, ranges, listings and deletes. It never sees a key.

Works with any S3 API (SeaweedFS, MinIO, AWS). Large objects go up as multipart uploads
whose parts are sent by a small bounded thread pool; a failed upload is aborted so no
orphaned parts are left behind.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, BinaryIO, TypeVar, cast
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from storage.errors import ObjectNotFound, StorageUnavailable
from storage.parts import BufferPool, PartReader, fill_parts, gather, prepend_all
from storage.settings import StorageSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

log = logging.getLogger(__name__)

READ_CHUNK = 1024 * 1024
SMALL_OBJECT = 2 * 1024 * 1024
"""Objects up to this size skip the part buffers (an 8 MiB buffer is zero-filled on creation)."""
_DELETE_BATCH = 1000
T = TypeVar("T")
_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}


def build_s3_client(settings: StorageSettings) -> S3Client:
    """One S3 client for the process, built from settings and injected where needed.

    An empty ``access_key_id`` means "use the standard AWS credential chain" (roles).
    Checksums are only sent where S3 requires them, which every S3-compatible store accepts.
    Request bodies are not hashed into the signature where nothing can alter them on the way
    (see :func:`body_is_protected_in_transit`); the request itself is always signed.
    """
    config = Config(
        signature_version="s3v4",
        s3={
            "addressing_style": "path" if settings.endpoint_url else "auto",
            "payload_signing_enabled": not body_is_protected_in_transit(settings.endpoint_url),
        },
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=max(10, settings.upload_concurrency * 2),
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    secret = settings.secret_access_key.get_secret_value() if settings.access_key_id else None
    return boto3.client(
        "s3",
        endpoint_url=settings.endpoint_url,
        region_name=settings.region,
        aws_access_key_id=settings.access_key_id or None,
        aws_secret_access_key=secret,
        config=config,
    )


def body_is_protected_in_transit(endpoint_url: str | None) -> bool:
    """True for TLS (AWS itself, ``https://``) and loopback endpoints.

    SigV4 can hash the body into the signature (SHA-256 over every byte, on both ends), which
    protects it on an open network. TLS already authenticates every byte, loopback never
    leaves the host, and the vault's bodies are AES-GCM ciphertext checked again on every
    read; there the hash only costs CPU (~1 ms per MB here). Plain HTTP to another host keeps it.
    """
    if endpoint_url is None:
        return True
    parts = urlsplit(endpoint_url)
    if parts.scheme == "https":
        return True
    host = parts.hostname or ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@dataclass(frozen=True)
class ObjectInfo:
    """A listed object: its key, stored size in bytes and when it was written (if told)."""

    key: str
    size: int
    last_modified: datetime | None = None


@dataclass(frozen=True)
class PendingUpload:
    """A multipart upload that was started and neither completed nor aborted."""

    key: str
    upload_id: str
    initiated: datetime | None


@dataclass(frozen=True)
class ObjectHead:
    """What S3 says about one object without reading it: stored size and ETag."""

    size: int
    etag: str


class S3ObjectStore:
    """Bytes in, bytes out, in one bucket."""

    def __init__(
        self,
        client: S3Client,
        *,
        bucket: str,
        part_size: int = 8 * 1024 * 1024,
        max_concurrency: int = 4,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.part_size = part_size
        self.max_concurrency = max_concurrency

    # -- bucket ---------------------------------------------------------------------------

    def check(self) -> None:
        """``HeadBucket``; raises :class:`StorageUnavailable` when S3 or the bucket is not there."""
        with self._errors("reach the bucket"):
            self.client.head_bucket(Bucket=self.bucket)

    def ensure_bucket(self) -> None:
        """Create the bucket when it does not exist yet (development and tests)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if _code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
                raise StorageUnavailable(f"S3 bucket {self.bucket!r}: {_code(exc)}") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"S3 is unreachable: {exc}") from exc
        region = self.client.meta.region_name
        with self._errors("create the bucket"):
            if region and region != "us-east-1":
                self.client.create_bucket(
                    Bucket=self.bucket,
                    CreateBucketConfiguration={"LocationConstraint": region},  # type: ignore[typeddict-item]
                )
            else:
                self.client.create_bucket(Bucket=self.bucket)

    # -- writing --------------------------------------------------------------------------

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> int:
        """Store the concatenated ``chunks`` under ``key``; returns the bytes stored.

        Up to ``SMALL_OBJECT`` bytes (most DICOM slices) go up with ``PutObject`` straight from
        the chunks. Larger objects are copied into part buffers: less than one part is still
        one ``PutObject``; anything larger is a multipart upload, aborted (no parts left
        behind) if the source or S3 fails midway. Memory stays at ``max_concurrency`` part
        buffers, reused from part to part: while one is being filled the others are in flight
        (filling is ~20x faster than sending).
        """
        source = iter(chunks)
        head, length = gather(source, SMALL_OBJECT)
        if length <= SMALL_OBJECT:
            with self._errors("store the object"):
                self.client.put_object(Bucket=self.bucket, Key=key, Body=b"".join(head))
            return length
        pool = BufferPool(self.part_size, self.max_concurrency)
        parts = fill_parts(prepend_all(head, source), pool)
        first, length = next(parts)
        if length < self.part_size:
            with self._errors("store the object"):
                self.client.put_object(
                    Bucket=self.bucket, Key=key, Body=bytes(memoryview(first)[:length])
                )
            return length
        with self._errors("start a multipart upload"):
            upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        try:
            completed, size = self._upload_parts(
                key, upload_id, pool, prepend_all([(first, length)], parts)
            )
            with self._errors("complete the multipart upload"):
                self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": completed},
                )
        except BaseException:
            self._abort(key, upload_id)
            raise
        return size

    def _upload_parts(
        self, key: str, upload_id: str, pool: BufferPool, parts: Iterator[tuple[bytearray, int]]
    ) -> tuple[list[CompletedPartTypeDef], int]:
        futures: list[Future[CompletedPartTypeDef]] = []
        size = 0
        with ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="s3-part") as workers:
            try:
                for number, (buffer, length) in enumerate(parts, start=1):
                    _raise_first_failure(futures)
                    if length == 0:  # the source ended exactly on a part boundary
                        pool.give_back(buffer)
                        break
                    future = workers.submit(
                        self._upload_part, key, upload_id, number, buffer, length, pool
                    )
                    futures.append(future)
                    size += length
                return [future.result() for future in futures], size
            except BaseException:
                for future in futures:
                    future.cancel()
                raise

    def _upload_part(
        self,
        key: str,
        upload_id: str,
        number: int,
        buffer: bytearray,
        length: int,
        pool: BufferPool,
    ) -> CompletedPartTypeDef:
        body = PartReader(memoryview(buffer)[:length])
        try:
            with self._errors(f"upload part {number}"):
                answer = self.client.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=cast(BinaryIO, body),  # a file object botocore can seek and re-read
                )
        finally:
            pool.give_back(buffer)
        return {"PartNumber": number, "ETag": answer["ETag"]}

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except (ClientError, BotoCoreError):
            log.exception("could not abort multipart upload", extra={"object_key": key})

    # -- reading --------------------------------------------------------------------------

    def get_stream(self, key: str, *, chunk_size: int = READ_CHUNK) -> Iterator[bytes]:
        """Open ``key`` now (raising :class:`ObjectNotFound`) and stream its bytes."""
        with self._errors("read the object", key=key):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        return self._stream(body.iter_chunks(chunk_size), key, close=body.close)

    def get_range(self, key: str, start: int, end: int) -> tuple[bytes, int]:
        """Bytes ``[start, end)`` of ``key`` (fewer if the object is shorter) and its size."""
        if start >= end:
            return b"", self.size(key)
        try:
            with self._errors("read a byte range", key=key):
                answer = self.client.get_object(
                    Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end - 1}"
                )
        except StorageUnavailable as exc:
            if isinstance(exc.__cause__, ClientError) and _code(exc.__cause__) == "InvalidRange":
                return b"", self.size(key)
            raise
        total = int(answer.get("ContentRange", "/0").rsplit("/", 1)[1])
        with self._errors("read a byte range", key=key):
            return answer["Body"].read(), total

    def size(self, key: str) -> int:
        """Stored size of ``key`` in bytes."""
        with self._errors("look up the object", key=key):
            return self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"]

    def head(self, key: str) -> ObjectHead:
        """Stored size and ETag of ``key`` (the ETag without its quotes)."""
        with self._errors("look up the object", key=key):
            answer = self.client.head_object(Bucket=self.bucket, Key=key)
        return ObjectHead(size=answer["ContentLength"], etag=answer.get("ETag", "").strip('"'))

    def is_empty(self) -> bool:
        """True when the bucket holds no object at all, or does not exist yet."""
        try:
            answer = self.client.list_objects_v2(Bucket=self.bucket, MaxKeys=1)
        except ClientError as exc:
            if _code(exc) in {"404", "NoSuchBucket", "NotFound"}:
                return True
            raise StorageUnavailable(f"S3 could not list {self.bucket!r}: {_code(exc)}") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"S3 is unreachable, could not list objects: {exc}") from exc
        return not answer.get("Contents")

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, in key order."""
        paginator = self.client.get_paginator("list_objects_v2")
        with self._errors("list objects"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield ObjectInfo(
                        key=item["Key"], size=item["Size"], last_modified=item.get("LastModified")
                    )

    def pending_uploads(self, prefix: str = "") -> Iterator[PendingUpload]:
        """Multipart uploads under ``prefix`` that were never completed nor aborted.

        A process killed in the middle of a large upload leaves one behind: its parts take
        space but no listing of objects shows them.
        """
        paginator = self.client.get_paginator("list_multipart_uploads")
        with self._errors("list multipart uploads"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Uploads", []):
                    yield PendingUpload(
                        key=item["Key"], upload_id=item["UploadId"], initiated=item.get("Initiated")
                    )

    def abort_upload(self, pending: PendingUpload) -> None:
        """Abort an unfinished multipart upload and free its parts."""
        with self._errors("abort a multipart upload"):
            self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=pending.key, UploadId=pending.upload_id
            )

    # -- deleting -------------------------------------------------------------------------

    def delete(self, key: str) -> None:
        """Delete ``key`` (deleting a missing key is not an error, as in S3)."""
        with self._errors("delete the object", key=key):
            self.client.delete_object(Bucket=self.bucket, Key=key)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; returns how many were deleted."""
        if not prefix:
            raise ValueError("refusing to delete the whole bucket")
        keys = [info.key for info in self.list_objects(prefix)]
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = [{"Key": key} for key in keys[start : start + _DELETE_BATCH]]
            with self._errors("delete objects"):
                answer = self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": batch, "Quiet": True},  # type: ignore[typeddict-item]
                )
            if answer.get("Errors"):
                failed = ", ".join(error.get("Key", "?") for error in answer["Errors"][:5])
                raise StorageUnavailable(f"S3 refused to delete some objects: {failed}")
        return len(keys)

    # -- errors ---------------------------------------------------------------------------

    def _stream(self, chunks: Iterator[bytes], key: str, *, close: object) -> Iterator[bytes]:
        try:
            with self._errors("read the object", key=key):
                yield from chunks
        finally:
            if callable(close):
                close()

    @contextmanager
    def _errors(self, action: str, *, key: str | None = None) -> Iterator[None]:
        try:
            yield
        except ClientError as exc:
            code = _code(exc)
            if key is not None and code in _MISSING_CODES:
                raise ObjectNotFound(f"object {key!r} is not in bucket {self.bucket!r}") from exc
            raise StorageUnavailable(f"S3 could not {action} in {self.bucket!r}: {code}") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"S3 is unreachable, could not {action}: {exc}") from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def _raise_first_failure(futures: list[Future[CompletedPartTypeDef]]) -> None:
    for future in futures:
        if future.done() and future.exception() is not None:
            future.result()
