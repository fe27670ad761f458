"""A silo's ACM certificate against moto: requested once, its validation CNAME in the silo zone, waited for until
ISSUED (moto keeps it PENDING_VALIDATION for a second, as ACM does until it sees the record), deleted with its record
at teardown, and found by the leak sweep when left behind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3

from control_plane.providers.aws.sets import SiloProviders
from control_plane.providers.aws.sweep import LeakSweep
from control_plane.providers.base import WorkspaceSpec
from infra.conventions import tags_from_list, workspace_tags
from tests.aws.conftest import SILO_DOMAIN, CloudCell

Make = Callable[..., WorkspaceSpec]


def _record(zone_id: str, name: str) -> dict[str, Any] | None:
    records = boto3.client("route53").list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    return next((r for r in records if r["Name"].rstrip(".") == name), None)


def test_certificate_is_requested_once_validated_in_the_zone_and_issued(
    silo: SiloProviders, sweep: LeakSweep, aws_cell: CloudCell, workspace: Make, cleanup: list[Any]
) -> None:
    ws = workspace("enterprise")
    cleanup.append(lambda: silo.certificate.teardown(ws))
    acm = boto3.client("acm")
    host = f"{ws.slug}.{SILO_DOMAIN}"

    first = silo.certificate.ensure(ws)
    assert first.created == ("certificate", "certificate_validation_record")
    arn = first.outputs["certificate_arn"]
    certificate = acm.describe_certificate(CertificateArn=arn)["Certificate"]
    assert certificate["Status"] == "ISSUED" and certificate["DomainName"] == host
    assert tags_from_list(acm.list_tags_for_certificate(CertificateArn=arn)["Tags"]) == workspace_tags(
        ws.id, ws.organization_id, ws.tier, ws.cell
    )
    [option] = certificate["DomainValidationOptions"]
    wanted = option["ResourceRecord"]
    assert option["ValidationMethod"] == "DNS"
    record = _record(aws_cell.silo_zone_id, wanted["Name"].rstrip("."))
    assert record is not None and record["Type"] == "CNAME"
    assert record["ResourceRecords"] == [{"Value": wanted["Value"]}]
    assert first.outputs == {
        "certificate_arn": arn,
        "certificate_zone_id": aws_cell.silo_zone_id,
        "certificate_validation_name": wanted["Name"].rstrip("."),
    }

    again = silo.certificate.ensure(ws)
    assert again == type(again)(first.outputs, ())
    assert silo.certificate.leftovers(ws) == [f"acm certificate {arn}"]

    silo.certificate.teardown(ws)
    silo.certificate.teardown(ws)  # idempotent
    assert silo.certificate.leftovers(ws) == []
    assert _record(aws_cell.silo_zone_id, wanted["Name"].rstrip(".")) is None
    pairs = [(aws_cell.silo_zone_id, first.outputs["certificate_validation_name"])]
    assert sweep.leftovers_for(ws.id, pairs) == []


def test_a_certificate_gone_from_acm_is_requested_again(
    silo: SiloProviders, workspace: Make, cleanup: list[Any]
) -> None:
    """What follows a failed validation (the ensure that sees it deletes the certificate): the next ensure requests a
    new one within the hour, and gets a new one."""
    ws = workspace("enterprise")
    cleanup.append(lambda: silo.certificate.teardown(ws))
    acm = boto3.client("acm")
    first = silo.certificate.ensure(ws).outputs
    acm.delete_certificate(CertificateArn=first["certificate_arn"])
    again = silo.certificate.ensure(ws)
    assert again.created == ("certificate",)  # the validation record is the domain's: still in place
    assert again.outputs["certificate_arn"] != first["certificate_arn"]


def test_the_sweep_finds_a_certificate_left_behind(
    silo: SiloProviders, sweep: LeakSweep, workspace: Make, cleanup: list[Any]
) -> None:
    ws = workspace("enterprise")
    cleanup.append(lambda: silo.certificate.teardown(ws))
    arn = silo.certificate.ensure(ws).outputs["certificate_arn"]
    assert sweep.leftovers_for(ws.id) == [arn]  # by its tag
    assert sweep.leftovers_for(workspace("enterprise").id) == []
