"""An S3 drop folder: `{table}.csv`, `{table}.csv.gz` or `{table}.parquet` objects under `s3://bucket/prefix/`.

A fetch lists the folder once; the version is the ETag of each table's object, so when no object changed the
cycle is skipped like an unchanged Kaggle version (nothing is downloaded). Otherwise each table's object is
downloaded, and its version is the ETag of the bytes actually received. The S3 client is the lake's (the same
credential chain, `aws.region`, `aws.endpoint_url` or AWS_ENDPOINT_URL_S3, `aws.profile`, retries), with
`source.region`/`endpoint_url`/`profile` for a drop folder that lives elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config import LakeConfig, TableConfig
from ..errors import SourceError
from ..extras import missing
from . import versions
from .base import FILE_SUFFIXES, Fetch

log = logging.getLogger("cdc_core")
CHUNK = 1 << 20


class S3Source:
    """Downloads each table's object from an S3 folder, skipping the cycle when no object's ETag changed."""

    def __init__(self, config: LakeConfig):
        self.config = config
        self.url = config.url.rstrip("/") + "/"
        self.description = f"s3 {self.url}"

    def fetch(self, tables: Sequence[TableConfig], dest: Path, *, last_version: str | None = None) -> Fetch:
        client = self._client()
        listing = self._list(client)
        objects, errors = {}, {}
        for table in tables:
            name = next((f"{table.name}{s}" for s in FILE_SUFFIXES if f"{table.name}{s}" in listing), None)
            if name is None:
                there = ", ".join(sorted(listing)[:12]) or "nothing"
                errors[table.name] = SourceError(
                    f'Table "{table.name}": {self.url} has no {table.name}.csv (nor .csv.gz, .parquet; it holds: '
                    f"{there}) — upload the file or fix the table's \"name\" or \"source.url\"")
            else:
                objects[table.name] = name
        version = versions.encode({name: listing[name] for name in objects.values()})
        if version == last_version:
            return Fetch(version=version, errors=errors, unchanged=True)
        result = Fetch(version=None, errors=errors)
        received = {}
        for table, name in objects.items():
            try:
                result.files[table], received[name] = self._download(client, name, Path(dest))
            except SourceError as exc:
                result.errors[table] = SourceError(f'Table "{table}": {exc}')
        result.version = versions.encode(received)
        return result

    def _client(self) -> Any:
        try:
            from ..s3lake import s3_client

            return s3_client(self.config)
        except ImportError:
            raise missing("the s3 source", "boto3") from None
        except _errors() as exc:  # e.g. a profile that does not exist
            raise self._error(exc, "Cannot set up the S3 client") from None

    def _key(self, name: str) -> str:
        return f"{self.config.prefix}/{name}" if self.config.prefix else name

    def _list(self, client: Any) -> dict[str, str]:
        """The folder's objects (directly under the prefix): name → ETag (without its quotes)."""
        start = len(self._key(""))
        try:
            pages = client.get_paginator("list_objects_v2").paginate(
                Bucket=self.config.bucket, Prefix=self._key(""), Delimiter="/")
            return {item["Key"][start:]: item["ETag"].strip('"') for page in pages for item in page.get("Contents", [])}
        except _errors() as exc:
            raise self._error(exc, f"Cannot list {self.url}") from None

    def _download(self, client: Any, name: str, dest: Path) -> tuple[Path, str]:
        """Stream one object into `dest`; its ETag as received."""
        partial = dest / f".{name}.download"
        try:
            response = client.get_object(Bucket=self.config.bucket, Key=self._key(name))
            with open(partial, "wb") as out:
                out.writelines(response["Body"].iter_chunks(CHUNK))
        except _errors() as exc:
            partial.unlink(missing_ok=True)
            raise self._error(exc, f"downloading {self.url}{name} failed") from None
        return partial.replace(dest / name), response["ETag"].strip('"')

    def _error(self, exc: Exception, what: str) -> SourceError:
        """One line that says what failed and how to fix it; never a credential."""
        from botocore.exceptions import (
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
            ProfileNotFound,
        )

        if isinstance(exc, NoCredentialsError):
            return SourceError(f"{what}: no AWS credentials found — set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                               'in .env, name a profile in "aws.profile", or run with an instance role')
        if isinstance(exc, ProfileNotFound):
            return SourceError(f'{what}: {exc} — fix "aws.profile" (or "source.profile") in the config')
        if isinstance(exc, EndpointConnectionError):
            return SourceError(f"{what}: cannot reach S3 ({exc}) — check the network and \"aws.endpoint_url\" "
                               "(or AWS_ENDPOINT_URL_S3); the next cycle tries again")
        code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
        if code == "NoSuchBucket":
            return SourceError(f"{what}: the bucket {self.config.bucket} does not exist — fix \"source.url\"")
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
            return SourceError(f"{what}: S3 refused the credentials or the permission ({code}) — check the AWS "
                               "credentials and that they may list and read the folder")
        if code in ("NoSuchKey", "404"):
            return SourceError(f"{what}: the object is gone (deleted after the listing?) — the next cycle tries "
                               "again")
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return SourceError(f"{what} ({detail}) — the next cycle tries again")


def _errors() -> tuple[type[Exception], ...]:
    """What boto3 raises when S3 fails (imported late: boto3 is only loaded for S3)."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    return Boto3Error, BotoCoreError, ClientError, OSError
