"""Where format tables live, and the S3 settings their libraries need, from the lake config and boto3's environment.

boto3 resolves credentials the usual way (environment, `aws.profile`, instance role); they are handed to the
library in memory and never logged. The endpoint comes from `aws.endpoint_url`, else `AWS_ENDPOINT_URL_S3` /
`AWS_ENDPOINT_URL`; the region from `aws.region`, else the environment or the profile.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..config import LakeConfig


def lake_uri(lake: LakeConfig, *parts: str) -> str:
    """`s3://bucket/prefix/parts…` or the absolute local path of `parts` in the lake."""
    if lake.is_s3:
        return "/".join([lake.url.rstrip("/"), *parts])
    return str(lake.path.joinpath(*parts).resolve())


@dataclass(frozen=True)
class S3Settings:
    """What an S3 client outside boto3 needs: endpoint, region, credentials, encryption."""

    endpoint: str | None
    region: str
    access_key: str | None
    secret_key: str | None
    token: str | None
    sse: str | None
    kms_key_id: str | None

    def __repr__(self) -> str:  # never show the credentials
        return f"S3Settings(endpoint={self.endpoint!r}, region={self.region!r})"


def s3_settings(lake: LakeConfig) -> S3Settings:
    """Resolve the lake's S3 settings the way boto3 would."""
    import boto3

    session = boto3.Session(profile_name=lake.profile) if lake.profile else boto3.Session()
    endpoint = (lake.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
                or None)
    region = lake.region or session.region_name or "us-east-1"
    found = session.get_credentials()
    creds = found.get_frozen_credentials() if found else None
    return S3Settings(endpoint=endpoint, region=region, access_key=creds.access_key if creds else None,
                      secret_key=creds.secret_key if creds else None, token=creds.token if creds else None,
                      sse=lake.sse, kms_key_id=lake.kms_key_id)


def delta_storage_options(lake: LakeConfig) -> dict[str, str] | None:
    """delta-rs (object_store) options for an S3 lake; None for a local one."""
    if not lake.is_s3:
        return None
    s3 = s3_settings(lake)
    options = {"AWS_REGION": s3.region}
    if s3.endpoint:
        options["AWS_ENDPOINT_URL"] = s3.endpoint
        if s3.endpoint.startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
    if s3.access_key and s3.secret_key:
        options.update(AWS_ACCESS_KEY_ID=s3.access_key, AWS_SECRET_ACCESS_KEY=s3.secret_key)
        if s3.token:
            options["AWS_SESSION_TOKEN"] = s3.token
    if s3.sse:
        options["AWS_SERVER_SIDE_ENCRYPTION"] = s3.sse
        if s3.kms_key_id:
            options["AWS_SSE_KMS_KEY_ID"] = s3.kms_key_id
    return options


def iceberg_file_io(lake: LakeConfig) -> dict[str, str]:
    """pyiceberg `s3.*` FileIO properties for an S3 lake (the catalog's own properties win); {} for a local one."""
    if not lake.is_s3:
        return {}
    s3 = s3_settings(lake)
    props = {"s3.region": s3.region}
    if s3.endpoint:
        props["s3.endpoint"] = s3.endpoint
    if s3.access_key and s3.secret_key:
        props.update({"s3.access-key-id": s3.access_key, "s3.secret-access-key": s3.secret_key})
        if s3.token:
            props["s3.session-token"] = s3.token
    return props
