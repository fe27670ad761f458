"""Public names: ``<slug>.<domain>`` as a CNAME to the ingress that serves the workspace.

Route53 records carry no tags: they are found by name (the outputs record the zone and name, so the
leak sweep can look them up again).
"""

from __future__ import annotations

from typing import Any

from control_plane.providers.aws.common import Aws, CellLookup, SiloConfig, Waits, cell_of
from control_plane.providers.base import Ensured, ProviderError, WorkspaceSpec
from infra.conventions import workspace_hostname

TTL_SECONDS = 60


def find_record(route53: Any, zone_id: str, name: str) -> dict[str, Any] | None:
    """The CNAME record set ``name`` of ``zone_id``, if any."""
    page = route53.list_resource_record_sets(
        HostedZoneId=zone_id, StartRecordName=name, StartRecordType="CNAME", MaxItems="1"
    )
    for record in page["ResourceRecordSets"]:
        if record["Name"].rstrip(".") == name and record["Type"] == "CNAME":
            return dict(record)
    return None


class Records:
    """CNAME records of hosted zones."""

    def __init__(self, aws: Aws, region: str, waits: Waits) -> None:
        self._aws = aws
        self._region = region
        self._waits = waits

    def _route53(self) -> Any:
        return self._aws.client("route53", self._region)

    def find(self, zone_id: str, name: str) -> dict[str, Any] | None:
        """The CNAME record set ``name`` of ``zone_id``, if any."""
        return find_record(self._route53(), zone_id, name)

    def _change(self, zone_id: str, action: str, record: dict[str, Any]) -> None:
        change = {"Changes": [{"Action": action, "ResourceRecordSet": record}]}
        change_id = self._route53().change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch=change)["ChangeInfo"][
            "Id"
        ]
        self._waits.until(
            f"DNS change of {record['Name']}",
            lambda: self._route53().get_change(Id=change_id)["ChangeInfo"]["Status"] == "INSYNC",
        )

    def ensure(self, zone_id: str, name: str, target: str) -> bool:
        """Point ``name`` at ``target``; True if the record did not exist before."""
        current = self.find(zone_id, name)
        if current and [r["Value"] for r in current.get("ResourceRecords", [])] == [target]:
            return False
        record = {"Name": name, "Type": "CNAME", "TTL": TTL_SECONDS, "ResourceRecords": [{"Value": target}]}
        self._change(zone_id, "UPSERT", record)
        return current is None

    def delete(self, zone_id: str, name: str) -> None:
        """Remove the record ``name`` if it exists."""
        current = self.find(zone_id, name)
        if current is not None:
            self._change(zone_id, "DELETE", current)


def _dns_outputs(zone_id: str, name: str) -> dict[str, Any]:
    return {"endpoint_url": f"https://{name}", "dns_zone_id": zone_id, "dns_name": name}


class SiloDns:
    """``<slug>.<aws_zone_domain>`` in ``aws_zone_id``, pointing at the silo's ingress
    (``outputs["ingress_hostname"]``, reported by the step that deploys the workspace server).
    """

    def __init__(self, aws: Aws, config: SiloConfig) -> None:
        self._config = config
        self._records = Records(aws, config.region, config.waits)

    def _where(self, ws: WorkspaceSpec) -> tuple[str, str]:
        """Zone id and record name of ``ws``."""
        zone_id, domain = self._config.zone_id, self._config.zone_domain
        if not (zone_id and domain):
            raise ProviderError("set CANOPY_AWS_ZONE_ID and CANOPY_AWS_ZONE_DOMAIN for silo names")
        return zone_id, workspace_hostname(ws.slug, domain)

    def endpoint_url(self, ws: WorkspaceSpec) -> str:
        return f"https://{self._where(ws)[1]}"

    def ensure(self, ws: WorkspaceSpec, outputs: dict[str, Any]) -> Ensured:
        target = outputs.get("ingress_hostname")
        if not target:
            raise ProviderError("no ingress hostname to point the workspace's name at")
        zone_id, name = self._where(ws)
        created = self._records.ensure(zone_id, name, str(target))
        return Ensured(_dns_outputs(zone_id, name), ("dns_record",) if created else ())

    def teardown(self, ws: WorkspaceSpec) -> None:
        self._records.delete(*self._where(ws))

    def leftovers(self, ws: WorkspaceSpec) -> list[str]:
        zone_id, name = self._where(ws)
        return [f"route53 record {name}"] if self._records.find(zone_id, name) else []


class PooledDns:
    """``<slug>.<cell domain>`` in the cell's zone, pointing at the cell's shared ingress
    (``<cell_ingress_label>.<cell domain>``) unless ``outputs["ingress_hostname"]`` names another.
    """

    def __init__(self, aws: Aws, cells: CellLookup, ingress_label: str, waits: Waits) -> None:
        self._aws = aws
        self._cells = cells
        self._ingress_label = ingress_label
        self._waits = waits

    def _where(self, ws: WorkspaceSpec) -> tuple[Records, str, str, str]:
        """Records client, zone id, record name and default target of ``ws``."""
        cell = cell_of(self._cells, ws)
        records = Records(self._aws, cell.region, self._waits)
        return records, cell.zone_id, workspace_hostname(ws.slug, cell.domain), f"{self._ingress_label}.{cell.domain}"

    def endpoint_url(self, ws: WorkspaceSpec) -> str:
        return f"https://{self._where(ws)[2]}"

    def ensure(self, ws: WorkspaceSpec, outputs: dict[str, Any]) -> Ensured:
        records, zone_id, name, ingress = self._where(ws)
        created = records.ensure(zone_id, name, str(outputs.get("ingress_hostname") or ingress))
        return Ensured(_dns_outputs(zone_id, name), ("dns_record",) if created else ())

    def teardown(self, ws: WorkspaceSpec) -> None:
        records, zone_id, name, _ = self._where(ws)
        records.delete(zone_id, name)

    def leftovers(self, ws: WorkspaceSpec) -> list[str]:
        records, zone_id, name, _ = self._where(ws)
        return [f"route53 record {name}"] if records.find(zone_id, name) else []
