"""The lake: where full loads, change sets and manifests are published.

Keys (seed-compatible): `{prefix}/full-load/{table}/{table}.parquet` (the latest full table) and
`{prefix}/cdc/{table}/{table}_{run_id}.parquet` with `run_id` = `YYYYMMDD_HHMMSS` (UTC). Besides them:
`{prefix}/base/{table}/{table}_{run_id}.parquet`, the table's first full load, kept for replay, and
`{prefix}/manifests/{table}/{table}_{run_id}.json`, the commit marker of each capture, written last.
Keys are deterministic, so a retried upload overwrites instead of duplicating.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from .config import LakeConfig
from .errors import LakeError


def sha256(path: Path) -> str:
    """The hex SHA-256 of a file, as manifests record it."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def full_load_key(table: str) -> str:
    return f"full-load/{table}/{table}.parquet"


def cdc_key(table: str, run_id: str) -> str:
    return f"cdc/{table}/{table}_{run_id}.parquet"


def base_key(table: str, run_id: str) -> str:
    return f"base/{table}/{table}_{run_id}.parquet"


def manifest_key(table: str, run_id: str) -> str:
    return f"manifests/{table}/{table}_{run_id}.json"


class Lake(Protocol):
    """A place that stores files under keys relative to the lake's root."""

    url: str

    def put(self, local: Path, key: str, on_bytes: Callable[[int], None] | None = None) -> None: ...

    def list(self, prefix: str) -> list[str]: ...

    def local(self, key: str, folder: Path) -> Path: ...


class LocalLake:
    """A folder as the lake; every write is atomic (temporary file + rename)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    def put(self, local: Path, key: str, on_bytes: Callable[[int], None] | None = None) -> None:
        target = self._path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
            os.close(fd)
            shutil.copyfile(local, tmp)
            os.replace(tmp, target)
            if on_bytes:
                on_bytes(target.stat().st_size)
        except OSError as exc:
            raise LakeError(f"Cannot write {key} into the lake {self.url} ({exc.strerror or exc}) — check the "
                            "folder exists and is writable") from exc

    def local(self, key: str, folder: Path) -> Path:
        """A local path to read `key` from: the lake's own file (no copy)."""
        path = self._path(key)
        if not path.is_file():
            raise LakeError(f"The lake {self.url} has no {key} — was it captured into another lake?")
        return path

    def list(self, prefix: str = "") -> list[str]:
        base = self._path(prefix) if prefix else self.root
        if not base.exists():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*")
                      if p.is_file() and not p.name.startswith(".upload-"))


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
        try:
            self.client.upload_file(str(local), self.config.bucket, self._key(key), ExtraArgs=self.extra or None,
                                    Config=self.transfer, Callback=on_bytes)
        except _s3_errors() as exc:
            raise self._error(exc, f"Cannot upload {key} to {self.url}") from None

    def local(self, key: str, folder: Path) -> Path:
        target = folder.joinpath(*key.split("/"))
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
    `endpoint_url` (else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL), botocore's standard retries, timeouts."""
    import boto3
    from botocore.config import Config as BotoConfig

    session = boto3.Session(profile_name=config.profile) if config.profile else boto3.Session()
    return session.client("s3", region_name=config.region, endpoint_url=config.endpoint_url,
                          config=BotoConfig(retries={"max_attempts": config.max_attempts, "mode": "standard"},
                                            connect_timeout=10, read_timeout=60))


def _s3_errors() -> tuple[type[Exception], ...]:
    """What boto3 raises when S3 fails (imported late: boto3 is only loaded for an S3 lake)."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    return Boto3Error, BotoCoreError, ClientError, OSError


def make_lake(config: LakeConfig) -> Lake:
    """The lake a config names."""
    return S3Lake(config) if config.is_s3 else LocalLake(config.path)
