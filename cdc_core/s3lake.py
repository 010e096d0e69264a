"""`s3://bucket/prefix` as the lake, through boto3 (imported only when an S3 lake is used)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .config import LakeConfig
from .errors import LakeError
from .layout import inside, sha256
from .logs import add_secret


class S3Lake:
    """`s3://bucket/prefix` through boto3: the standard credential chain, botocore retries, multipart uploads."""

    def __init__(self, config: LakeConfig):
        from boto3.s3.transfer import TransferConfig

        self.config, self.url = config, config.url
        self.client = s3_client(config)
        threshold = config.multipart_threshold_mb * 1024 * 1024
        self.transfer = TransferConfig(multipart_threshold=threshold, multipart_chunksize=threshold)
        self.extra = {}
        if config.sse:
            self.extra["ServerSideEncryption"] = config.sse
            if config.sse == "aws:kms" and config.kms_key_id:
                self.extra["SSEKMSKeyId"] = config.kms_key_id

    def _key(self, key: str) -> str:
        return f"{self.config.prefix}/{key}" if self.config.prefix else key

    def put(self, local: Path, key: str, on_bytes: Callable[[int], None] | None = None) -> None:
        extra = {**self.extra, "Metadata": {"sha256": sha256(local)}}
        try:
            self.client.upload_file(str(local), self.config.bucket, self._key(key), ExtraArgs=extra,
                                    Config=self.transfer, Callback=on_bytes)
        except _s3_errors() as exc:
            raise self._error(exc, f"Cannot upload {key} to {self.url}") from None

    def create(self, local: Path, key: str, on_bytes: Callable[[int], None] | None = None,
               digest: str | None = None) -> bool:
        """Write `key` only if it does not exist; False if it does (S3 refuses a second create with 412: one
        conditional PUT, or a multipart upload completed with `If-None-Match: *` above the multipart threshold)."""
        return self._conditional(local, key, {"IfNoneMatch": "*"}, on_bytes, digest)

    def version(self, key: str) -> str | None:
        head = self._head(key)
        return None if head is None else head["ETag"]

    def _head(self, key: str) -> dict | None:
        """The object's HEAD (its ETag, its metadata), None when it does not exist."""
        try:
            return self.client.head_object(Bucket=self.config.bucket, Key=self._key(key))
        except _s3_errors() as exc:
            if _missing(exc):
                return None
            raise self._error(exc, f"Cannot read {key} from {self.url}", "check the lake and try again") from None

    def swap(self, local: Path, key: str, expected: str | None, digest: str | None = None) -> bool:
        """Replace `key` only if its ETag is still `expected` (`If-Match`; `If-None-Match: *` when absent)."""
        return self._conditional(local, key, {"IfMatch": expected} if expected else {"IfNoneMatch": "*"},
                                 digest=digest)

    def _conditional(self, local: Path, key: str, condition: dict[str, str],
                     on_bytes: Callable[[int], None] | None = None, digest: str | None = None) -> bool:
        """Upload `local` to `key` under an S3 write condition; False when S3 says it does not hold (412)."""
        from botocore.exceptions import ClientError

        size = Path(local).stat().st_size
        meta = {"sha256": digest or sha256(local)}
        common = {"Bucket": self.config.bucket, "Key": self._key(key)}
        try:
            if size > self.transfer.multipart_threshold:
                self._multipart(local, common, condition, on_bytes, meta)
            else:
                self.client.put_object(**common, Body=Path(local).read_bytes(), Metadata=meta, **condition,
                                       **self.extra)
                if on_bytes:
                    on_bytes(size)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412",
                                                              "ConditionalRequestConflict"):
                return False
            raise self._error(exc, f"Cannot upload {key} to {self.url}") from None
        except _s3_errors() as exc:
            raise self._error(exc, f"Cannot upload {key} to {self.url}") from None
        return True

    def _multipart(self, local: Path, common: dict, condition: dict[str, str],
                   on_bytes: Callable[[int], None] | None, meta: dict[str, str]) -> None:
        """One multipart upload whose completion carries the write condition (aborted on any failure)."""
        upload = self.client.create_multipart_upload(**common, Metadata=meta, **self.extra)
        parts, chunk = [], self.transfer.multipart_chunksize
        try:
            with open(local, "rb") as f:
                while block := f.read(chunk):
                    number = len(parts) + 1
                    done = self.client.upload_part(**common, UploadId=upload["UploadId"], PartNumber=number,
                                                   Body=block)
                    parts.append({"ETag": done["ETag"], "PartNumber": number})
                    if on_bytes:
                        on_bytes(len(block))
            self.client.complete_multipart_upload(**common, UploadId=upload["UploadId"],
                                                  MultipartUpload={"Parts": parts}, **condition)
        except BaseException:
            try:
                self.client.abort_multipart_upload(**common, UploadId=upload["UploadId"])
            except _s3_errors():
                pass  # an unfinished upload is never visible; a bucket lifecycle rule removes its parts
            raise

    def read(self, key: str) -> bytes:
        found = self.get(key)
        if found is None:
            raise LakeError(f"The lake {self.url} has no {key} — was it captured into another lake?")
        return found

    def get(self, key: str) -> bytes | None:
        try:
            return self.client.get_object(Bucket=self.config.bucket, Key=self._key(key))["Body"].read()
        except _s3_errors() as exc:
            if _missing(exc):
                return None
            raise self._error(exc, f"Cannot read {key} from {self.url}", "check the lake and try again") from None

    def checksum(self, key: str) -> str | None:
        """The SHA-256 recorded with the object when cdc_core wrote it (None if the object does not exist)."""
        head = self._head(key)
        return None if head is None else head.get("Metadata", {}).get("sha256", "")

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.config.bucket, Key=self._key(key))
        except _s3_errors() as exc:
            raise self._error(exc, f"Cannot delete {key} from {self.url}", "check the lake and try again") from None

    def local(self, key: str, folder: Path) -> Path:
        target = inside(folder, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.client.download_file(self.config.bucket, self._key(key), str(target), Config=self.transfer)
        except _s3_errors() as exc:
            raise self._error(exc, f"Cannot download {key} from {self.url}", "check the lake and try again") \
                from None
        return target

    def list(self, prefix: str = "") -> list[str]:
        start = len(self._key(""))
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.config.bucket, Prefix=self._key(prefix))
            return sorted(item["Key"][start:] for page in pages for item in page.get("Contents", []))
        except _s3_errors() as exc:
            raise self._error(exc, f"Cannot list {prefix or '/'} in {self.url}", "check the lake and try again") \
                from None

    def _error(self, exc: Exception, what: str,
               retry: str = "the change set stays in the outbox; the next run retries it") -> LakeError:
        """One line that says what failed and how to fix it; never a credential."""
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import ClientError, NoCredentialsError

        if isinstance(exc, NoCredentialsError):
            return LakeError(f"{what}: no AWS credentials found — set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                             'in .env, name a profile in "aws.profile", or run with an instance role')
        code = ""
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
        elif isinstance(exc, S3UploadFailedError):
            code = next((c for c in ("NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch")
                         if c in str(exc)), "")
        if code == "NoSuchBucket":
            return LakeError(f"{what}: the bucket {self.config.bucket} does not exist — create it or fix "
                             '"aws.bucket" / "lake" in the config')
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
            return LakeError(f"{what}: S3 refused the credentials or the permission ({code}) — check the AWS "
                             "credentials and that they may read, write and list the bucket")
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return LakeError(f"{what} ({detail}) — {retry}")


def s3_client(config: LakeConfig):
    """A boto3 S3 client for a bucket's settings: the standard credential chain (or `profile`), `region`,
    `endpoint_url` (else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL), botocore's standard retries, timeouts.
    Credentials it finds (also in ~/.aws/credentials or a profile) are masked wherever they would be logged."""
    import boto3
    from botocore.config import Config as BotoConfig

    session = boto3.Session(profile_name=config.profile) if config.profile else boto3.Session()
    credentials = session.get_credentials()
    if credentials is not None:
        add_secret(credentials.secret_key)
        add_secret(credentials.token)
    return session.client("s3", region_name=config.region, endpoint_url=config.endpoint_url,
                          config=BotoConfig(retries={"max_attempts": config.max_attempts, "mode": "standard"},
                                            connect_timeout=10, read_timeout=60))


def _missing(exc: Exception) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404",
                                                                                           "NotFound")


def _s3_errors() -> tuple[type[Exception], ...]:
    """What boto3 raises when S3 fails (imported late: boto3 is only loaded for an S3 lake)."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    return Boto3Error, BotoCoreError, ClientError, OSError
