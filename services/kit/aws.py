"""Where the event bus is: the seed's auto-detection of the runtime mode.

- `AWS_ENDPOINT_URL` (or `LOCALSTACK_ENDPOINT`) set: SNS/SQS at that endpoint (moto server,
  LocalStack);
- `ACCORD_ENV=production`: real AWS with the default credential chain;
- otherwise: the in-memory bus.

The same boto3 code runs in the first two modes; only the client's endpoint differs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class BusLocation:
    """The detected bus: its mode, and the endpoint and region for the boto3 clients."""

    mode: Literal["memory", "endpoint", "aws"]
    endpoint_url: str | None = None
    region: str = DEFAULT_REGION

    @classmethod
    def detect(cls, environ: Mapping[str, str] | None = None) -> BusLocation:
        env = os.environ if environ is None else environ
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
        endpoint = env.get("AWS_ENDPOINT_URL") or env.get("LOCALSTACK_ENDPOINT")
        if endpoint:
            if not endpoint.startswith(("http://", "https://")):
                raise ValueError(
                    "AWS_ENDPOINT_URL / LOCALSTACK_ENDPOINT must be an http(s) URL, "
                    f"got {endpoint!r}"
                )
            return cls("endpoint", endpoint, region)
        if env.get("ACCORD_ENV") == "production":
            return cls("aws", None, region)
        return cls("memory", None, region)

    def client(self, service: Literal["sns", "sqs", "glue"]) -> Any:
        """A boto3 client for this location (emulators get dummy credentials if none are set)."""
        import boto3
        from botocore.config import Config

        if self.mode == "memory":
            raise ValueError("the in-memory bus has no AWS clients")
        options: dict[str, Any] = {
            "region_name": self.region,
            "config": Config(retries={"max_attempts": 3, "mode": "standard"}),
        }
        if self.endpoint_url:
            options["endpoint_url"] = self.endpoint_url
            session = boto3.session.Session()
            if session.get_credentials() is None:
                options |= {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
        return boto3.client(service, **options)

    def sns(self) -> SNSClient:
        client: SNSClient = self.client("sns")
        return client

    def sqs(self) -> SQSClient:
        client: SQSClient = self.client("sqs")
        return client
