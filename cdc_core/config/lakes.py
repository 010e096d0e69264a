"""The `lake` key (or the seed's `aws` block): a local folder or `s3://bucket/prefix`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..logs import mask
from .fields import _check_keys, _path, _positive_int

AWS_KEYS = {"bucket", "prefix", "region", "endpoint_url", "sse", "kms_key_id", "max_attempts", "profile",
            "multipart_threshold_mb"}


@dataclass(frozen=True)
class LakeConfig:
    """Where captures go: a local folder or `s3://bucket/prefix`."""

    url: str
    path: Path | None = None
    bucket: str | None = None
    prefix: str = ""
    region: str | None = None
    endpoint_url: str | None = None
    sse: str | None = None
    kms_key_id: str | None = None
    max_attempts: int = 5
    profile: str | None = None
    multipart_threshold_mb: int = 64

    @property
    def is_s3(self) -> bool:
        return self.bucket is not None


def _lake(raw: dict, base_dir: Path) -> LakeConfig:
    aws = raw.get("aws")
    if aws is not None:
        if not isinstance(aws, dict):
            raise ConfigError('Config key "aws" must be an object like {"bucket": "my-lake", "prefix": "loyalty"}')
        _check_keys(aws, AWS_KEYS, "aws.")
    aws = aws or {}
    lake = raw.get("lake")
    if lake is None:
        if not aws.get("bucket"):
            raise ConfigError('Config has no lake — add "lake": "lake" (a local folder), '
                              '"lake": "s3://bucket/prefix", or an "aws" block with "bucket"')
        return _s3_lake(aws["bucket"], aws.get("prefix") or "", aws)
    if not isinstance(lake, str) or not lake:
        raise ConfigError('Config key "lake" must be a folder path or "s3://bucket/prefix"')
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", lake)
    if scheme and scheme[1] != "s3":
        raise ConfigError(f'Config key "lake" is {mask(lake)!r}, but {scheme[1]}:// is not a lake this tool '
                          'writes — use "s3://bucket/prefix" (lowercase s3; MinIO and other S3-compatible stores '
                          'via "aws.endpoint_url") or a local folder path')
    if lake.startswith("s3://"):
        bucket, _, prefix = lake[len("s3://"):].partition("/")
        if not bucket:
            raise ConfigError(f'Config key "lake" is {lake!r} — name the bucket: "s3://bucket/prefix"')
        return _s3_lake(bucket, prefix, aws)
    path = _path(lake, "lake", base_dir)
    return LakeConfig(url=str(path), path=path)


def _s3_lake(bucket: str, prefix: str, aws: dict) -> LakeConfig:
    if not isinstance(bucket, str) or not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
        raise ConfigError(f'Config key "aws.bucket" is {bucket!r} — use a valid S3 bucket name')
    if not isinstance(prefix, str):
        raise ConfigError('Config key "aws.prefix" must be a string (or empty)')
    prefix = "/".join(part for part in prefix.split("/") if part)
    sse = aws.get("sse")
    if sse not in (None, "AES256", "aws:kms"):
        raise ConfigError(f'Config key "aws.sse" is {sse!r} — use "AES256" or "aws:kms"')
    url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    return LakeConfig(url=url, bucket=bucket, prefix=prefix, region=aws.get("region"),
                      endpoint_url=aws.get("endpoint_url"), sse=sse, kms_key_id=aws.get("kms_key_id"),
                      max_attempts=_positive_int(aws.get("max_attempts", 5), "aws.max_attempts"),
                      profile=aws.get("profile"),
                      multipart_threshold_mb=_positive_int(aws.get("multipart_threshold_mb", 64),
                                                           "aws.multipart_threshold_mb"))
