"""The TLS certificate of an enterprise silo: ACM, for ``<slug>.<aws_zone_domain>``, DNS-validated in the silo zone.

ACM certificates have no name: a workspace's is found by its ``canopy:workspace`` tag (one Resource Groups Tagging
API call, not a tag read per certificate of the account) and its domain; the request itself carries the tags. No
idempotency token: within its hour ACM would answer a new request after a failed validation with the deleted
certificate's ARN; a request whose answer was lost leaves a second tagged certificate, which teardown and the leak
sweep find too.

The ensure creates the validation CNAME ACM asks for (``DescribeCertificate``'s
``DomainValidationOptions[].ResourceRecord``, which appears some seconds after the request) and waits for ``ISSUED``;
a certificate that failed validation is deleted so that the next reconcile requests a new one. The NLB in front of
the silo's ingress controller ends TLS with it (:mod:`control_plane.kube.ingress_controller`).

Teardown (after the ingress step let the load balancer go) removes the validation record, then the certificate; a
certificate still in use answers ``ResourceInUseException`` and is waited for.
"""

from __future__ import annotations

import functools
from typing import Any

from botocore.exceptions import ClientError

from control_plane.providers.aws.common import Aws, SiloConfig, absent, error_code, tagged_arns, tags_of
from control_plane.providers.aws.route53 import Records
from control_plane.providers.base import Ensured, ProviderError, WorkspaceSpec
from infra.conventions import tag_list, workspace_hostname

FAILED_STATUSES = frozenset({"FAILED", "VALIDATION_TIMED_OUT", "REVOKED", "EXPIRED", "INACTIVE"})
KEY_ALGORITHM = "RSA_2048"
NOT_FOUND = "ResourceNotFoundException"


class SiloCertificate:
    """The silo workspace's ACM certificate and its validation record (a ResourceProvider)."""

    def __init__(self, aws: Aws, config: SiloConfig) -> None:
        self._aws = aws
        self._config = config
        self._records = Records(aws, config.region, config.waits)

    def _acm(self) -> Any:
        return self._aws.client("acm", self._config.region)

    def _where(self, ws: WorkspaceSpec) -> tuple[str, str]:
        """The silo zone's id and the workspace's hostname."""
        zone_id, domain = self._config.zone_id, self._config.zone_domain
        if not (zone_id and domain):
            raise ProviderError("set CANOPY_AWS_ZONE_ID and CANOPY_AWS_ZONE_DOMAIN for silo certificates")
        self._config.names(ws)  # refuses a workspace of another region
        return zone_id, workspace_hostname(ws.slug, domain)

    def find(self, ws: WorkspaceSpec) -> str | None:
        """The ARN of the workspace's certificate for its hostname, if one exists."""
        host = self._where(ws)[1]
        arns = [arn for arn in self._all(ws) if self._describe(arn)["DomainName"] == host]
        return arns[0] if arns else None

    def _all(self, ws: WorkspaceSpec) -> list[str]:
        """Every certificate tagged for ``ws`` that ACM still has (the tagging API may lag a deletion)."""
        arns = tagged_arns(self._aws, self._config.region, ws.id, "acm:certificate")
        return [arn for arn in arns if absent(functools.partial(self._describe, arn), NOT_FOUND)]

    def _describe(self, arn: str) -> dict[str, Any]:
        return dict(self._acm().describe_certificate(CertificateArn=arn)["Certificate"])

    def ensure(self, ws: WorkspaceSpec) -> Ensured:
        zone_id, host = self._where(ws)
        created: list[str] = []
        arn = self.find(ws)
        if arn is None:
            arn = self._request(ws, host)
            created.append("certificate")
        record = self._validation_record(arn)
        if self._records.ensure(zone_id, record["Name"].rstrip("."), record["Value"]):
            created.append("certificate_validation_record")
        self._wait_issued(arn)
        outputs = {
            "certificate_arn": arn,
            "certificate_zone_id": zone_id,
            "certificate_validation_name": record["Name"].rstrip("."),
        }
        return Ensured(outputs, tuple(created))

    def _request(self, ws: WorkspaceSpec, host: str) -> str:
        answer = self._acm().request_certificate(
            DomainName=host,
            ValidationMethod="DNS",
            KeyAlgorithm=KEY_ALGORITHM,
            Options={"CertificateTransparencyLoggingPreference": "ENABLED"},
            Tags=tag_list(tags_of(ws)),
        )
        return str(answer["CertificateArn"])

    def _validation_record(self, arn: str) -> dict[str, str]:
        """The CNAME ACM wants for the certificate's domain (waits until ACM has made it up)."""
        found: list[dict[str, str]] = []

        def offered() -> bool:
            options = self._describe(arn).get("DomainValidationOptions") or []
            found.extend(o["ResourceRecord"] for o in options if o.get("ResourceRecord"))
            return bool(found)

        self._config.waits.until(f"the DNS validation record of {arn}", offered)
        return found[0]

    def _wait_issued(self, arn: str) -> None:
        def issued() -> bool:
            status = str(self._describe(arn)["Status"])
            if status in FAILED_STATUSES:
                self._acm().delete_certificate(CertificateArn=arn)
                raise ProviderError(f"the certificate was {status}; a new one will be requested")
            return status == "ISSUED"

        self._config.waits.until(f"validation of certificate {arn}", issued)

    def teardown(self, ws: WorkspaceSpec) -> None:
        """Each of the workspace's certificates: its validation record, then itself."""
        zone_id, _ = self._where(ws)
        for arn in self._all(ws):
            options: list[dict[str, Any]] = self._describe(arn).get("DomainValidationOptions") or []
            for record in (o["ResourceRecord"] for o in options if o.get("ResourceRecord")):
                self._records.delete(zone_id, record["Name"].rstrip("."))
            self._config.waits.until(f"deletion of certificate {arn}", functools.partial(self._deleted, arn))

    def _deleted(self, arn: str) -> bool:
        """Delete ``arn``; False while a load balancer still uses it."""
        try:
            self._acm().delete_certificate(CertificateArn=arn)
        except ClientError as exc:
            if error_code(exc) == "ResourceInUseException":
                return False
            if error_code(exc) != NOT_FOUND:
                raise
        return True

    def leftovers(self, ws: WorkspaceSpec) -> list[str]:
        return [f"acm certificate {arn}" for arn in self._all(ws)]
