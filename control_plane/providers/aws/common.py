"""What the AWS providers share: clients, error codes, waiting, names and tags of a workspace."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from control_plane.core.settings import Settings, get_settings
from control_plane.providers.aws.budget import CallBudget
from control_plane.providers.base import ProviderError, WorkspaceSpec
from infra.conventions import TAG_WORKSPACE, CellOutputs, WorkspaceNames, tag_filters, workspace_names, workspace_tags

T = TypeVar("T")
K = TypeVar("K")
CellLookup = Callable[[str], CellOutputs]
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})
"""``standard`` retries: throttling and transient errors, exponential backoff with full jitter (``adaptive`` would add
a per-process client-side rate limiter, which the shared budget already is)."""
SERVICES = (
    "acm",
    "ec2",
    "eks",
    "iam",
    "kms",
    "rds",
    "resourcegroupstaggingapi",
    "route53",
    "s3",
    "secretsmanager",
    "sts",
)
"""Every service the providers call."""


class Aws:
    """boto3 clients per (service, region), built once and shared (boto3 clients are thread-safe); their calls take
    from the shared call budget (:mod:`control_plane.providers.aws.budget`; the settings' one unless given)."""

    def __init__(self, budget: CallBudget | None = None) -> None:
        self.budget = budget or CallBudget.from_settings(get_settings())
        self._session = boto3.session.Session()
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def client(self, service: str, region: str) -> Any:
        """The ``service`` client of ``region``."""
        with self._lock:
            if (service, region) not in self._clients:
                client = self._session.client(service, region_name=region, config=_CLIENT_CONFIG)
                self.budget.hook(client, service)
                self._clients[service, region] = client
            return self._clients[service, region]

    def warm(self, region: str, services: Iterable[str] = SERVICES) -> None:
        """Build the clients of ``services`` in ``region`` now (each costs tens of milliseconds of CPU to load its
        service model), so that the first jobs of a worker do not pay for them."""
        for service in services:
            self.client(service, region)


class Expiring(Generic[K, T]):
    """``load(key)``, kept for ``seconds`` (thread-safe; two racing misses may both load)."""

    def __init__(self, load: Callable[[K], T], seconds: float) -> None:
        self._load = load
        self._seconds = seconds
        self._values: dict[K, tuple[float, T]] = {}
        self._lock = threading.Lock()

    def __call__(self, key: K) -> T:
        with self._lock:
            hit = self._values.get(key)
        if hit is not None and time.monotonic() - hit[0] < self._seconds:
            return hit[1]
        value = self._load(key)
        with self._lock:
            self._values[key] = (time.monotonic(), value)
        return value


def cell_name(ws: WorkspaceSpec) -> str:
    """The cell a pooled workspace was placed in; a ProviderError if it has none."""
    if not ws.cell:
        raise ProviderError("a pooled workspace needs a cell")
    return ws.cell


def cell_of(cells: CellLookup, ws: WorkspaceSpec) -> CellOutputs:
    """The outputs of the cell a pooled workspace was placed in."""
    return cells(cell_name(ws))


def error_code(exc: ClientError) -> str:
    """The AWS error code of ``exc`` (``NoSuchEntity``, ``DBInstanceNotFound``, ...)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def absent(call: Callable[[], T], *codes: str) -> T | None:
    """``call()``, or None when AWS answers one of the not-found ``codes``."""
    try:
        return call()
    except ClientError as exc:
        if error_code(exc) in codes:
            return None
        raise


@contextmanager
def tolerating(*codes: str) -> Iterator[None]:
    """Swallow the AWS errors ``codes`` (deleting what is already gone)."""
    try:
        yield
    except ClientError as exc:
        if error_code(exc) not in codes:
            raise


@dataclass(frozen=True)
class Waits:
    """How long an ensure waits for AWS to finish something, and how often it looks."""

    timeout: float
    poll: float

    def until(self, what: str, done: Callable[[], bool]) -> None:
        """Poll ``done`` until it is true; past the timeout, a ProviderError (the reconciler retries later)."""
        deadline = time.monotonic() + self.timeout
        while not done():
            if time.monotonic() >= deadline:
                raise ProviderError(f"{what} not done after {self.timeout:g}s; will retry")
            time.sleep(self.poll)


@dataclass(frozen=True)
class SiloConfig:
    """Where enterprise silos go: one region, its private subnets and the zone of their names."""

    env: str
    region: str
    subnet_ids: tuple[str, ...]
    db_subnet_group: str | None
    zone_id: str | None
    zone_domain: str | None
    node_count: int
    waits: Waits

    @classmethod
    def from_settings(cls, settings: Settings) -> SiloConfig:
        """The silo configuration of ``settings`` (``aws_region`` unset = boto3's default region)."""
        region = settings.aws_region or boto3.session.Session().region_name
        if not region:
            raise ProviderError("no AWS region: set CANOPY_AWS_REGION or AWS_DEFAULT_REGION")
        return cls(
            env=settings.aws_environment,
            region=str(region),
            subnet_ids=tuple(settings.aws_private_subnet_ids),
            db_subnet_group=settings.aws_db_subnet_group_name,
            zone_id=settings.aws_zone_id,
            zone_domain=settings.aws_zone_domain,
            node_count=settings.aws_silo_node_count,
            waits=Waits(settings.aws_wait_timeout_seconds, settings.aws_poll_seconds),
        )

    def names(self, ws: WorkspaceSpec) -> WorkspaceNames:
        """Deterministic names of ``ws``'s silo resources; refuses a workspace of another region."""
        if ws.region != self.region:
            raise ProviderError(f"silos are provisioned in {self.region}, not in {ws.region}")
        return workspace_names(self.env, ws.id)


def tags_of(ws: WorkspaceSpec) -> dict[str, str]:
    """The ``canopy:*`` tags of every resource of ``ws``."""
    return workspace_tags(ws.id, ws.organization_id, ws.tier, ws.cell)


def tagged_arns(aws: Aws, region: str, workspace_id: uuid.UUID, *types: str) -> list[str]:
    """ARNs the Resource Groups Tagging API knows with ``canopy:workspace`` = ``workspace_id``."""
    api = aws.client("resourcegroupstaggingapi", region)
    filters: dict[str, Any] = {"TagFilters": tag_filters({TAG_WORKSPACE: str(workspace_id)})}
    if types:
        filters["ResourceTypeFilters"] = list(types)
    pages = api.get_paginator("get_resources").paginate(**filters)
    return [str(item["ResourceARN"]) for page in pages for item in page["ResourceTagMappingList"]]


def arn_parts(arn: str) -> tuple[str, str]:
    """The partition and account id of ``arn``."""
    parts = arn.split(":")
    return parts[1], parts[4]
