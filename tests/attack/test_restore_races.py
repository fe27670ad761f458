"""Races around a restore into a clone: the clone's address taken by another request between the check and the
insert is a 409 problem (it was a 500), and nothing is left of the refused restore."""

from __future__ import annotations

import threading
import uuid

import httpx
from sqlalchemy import text

from control_plane.core import db as core_db
from control_plane.workspaces import service as workspaces
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier
from tests.backups.conftest import BackupPlane
from tests.waiting import wait_until


def waiting_on_a_lock() -> bool:
    with core_db.session_scope() as session:
        query = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        return bool(session.scalar(text(query)))


def test_a_clone_address_taken_meanwhile_is_a_409(backing: BackupPlane) -> None:
    source_id = backing.workspace(f"race-{uuid.uuid4().hex[:6]}")
    backup = backing.back_up(source_id)
    backing.plane.stop_workers()
    organization_id = backing.plane.row(source_id).organization_id
    wanted = f"taken-{uuid.uuid4().hex[:6]}"
    answers: list[httpx.Response] = []

    def restore() -> None:
        body = {"mode": "clone", "slug": wanted}
        answers.append(backing.call(source_id, f"/{backup['id']}/restore", "POST", json=body))

    racer = core_db.new_session()
    try:  # another request creates a workspace at the address, not committed yet
        workspaces.new_workspace(
            racer,
            organization_id=organization_id,
            slug=wanted,
            display_name=None,
            tier=Tier.professional,
            region=None,
            state=Lifecycle.provisioning,
            actor="test",
        )
        thread = threading.Thread(target=restore)
        thread.start()
        wait_until("the restore waiting on the address", waiting_on_a_lock, 30)
        racer.commit()
    finally:
        racer.close()
    thread.join(60)

    [answer] = answers
    assert answer.status_code == 409, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["type"].endswith("/slug-taken"), answer.text
    assert backing.call(source_id, f"/{backup['id']}/restore").status_code == 404  # no restore was recorded
    assert backing.plane.row(source_id).lifecycle_state == Lifecycle.trialing
