"""The ``canopy`` command: run the embedded default, the API, workers, migrations, admin tasks."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from control_plane import move_cli, release_cli
from control_plane.sales import commands as sales_commands

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI
    from sqlalchemy.orm import Session

    from control_plane.core.settings import Settings

log = logging.getLogger("canopy")


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _reload_settings() -> None:
    from control_plane.core.db import reset_engine
    from control_plane.core.settings import get_settings

    get_settings.cache_clear()
    reset_engine()


def _refused(command: str) -> bool:
    """Whether the configuration must not start ``canopy <command>`` (says why on stderr)."""
    from control_plane.core.settings import get_settings
    from control_plane.credentials.keys import insecure_configuration

    reason = insecure_configuration(get_settings())
    if reason:
        print(f"canopy {command}: {reason}", file=sys.stderr)
    return reason is not None


def cmd_migrate(_: argparse.Namespace) -> int:
    """Apply pending schema migrations."""
    from control_plane.core.db import database_url
    from control_plane.core.migrate import upgrade

    upgrade(database_url())
    log.info("database migrated")
    return 0


def uvicorn_config(app: FastAPI, settings: Settings, host: str | None, port: int | None) -> uvicorn.Config:
    """How the API is served (the one place): ``X-Forwarded-*`` headers count only from trusted proxies.

    With no ``CANOPY_TRUSTED_PROXIES`` the client address is the TCP peer, whatever headers say, so
    per-address rate limits cannot be dodged by forging ``X-Forwarded-For``.
    """
    import uvicorn

    trusted = settings.trusted_proxies
    return uvicorn.Config(
        app,
        host=host or settings.listen_host,
        port=port or settings.listen_port,
        log_level="info",
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or None,
    )


def cmd_api(args: argparse.Namespace) -> int:
    """Serve the HTTP API and web pages."""
    if _refused("api"):
        return 2
    import uvicorn

    from control_plane.app import create_app
    from control_plane.core.migrate import DatabaseNotMigrated
    from control_plane.core.settings import get_settings

    settings = get_settings()
    try:
        app = create_app()
    except DatabaseNotMigrated as exc:
        log.error("%s", exc)
        return 2
    server = uvicorn.Server(uvicorn_config(app, settings, args.host, args.port))
    server.run()
    return 0 if server.started else 3


def cmd_worker(args: argparse.Namespace) -> int:
    """Run a reconciler worker."""
    from control_plane.reconciler.worker import main as worker_main

    return worker_main(args.worker_args)


def _supervise_worker(stop: threading.Event) -> None:
    """Keep one worker process running until ``stop`` is set (embedded default)."""
    process: subprocess.Popen[bytes] | None = None
    while not stop.is_set():
        if process is None or process.poll() is not None:
            if process is not None:
                log.warning("worker exited with %s; restarting it", process.returncode)
            process = subprocess.Popen([sys.executable, "-m", "control_plane.reconciler.worker"])
        stop.wait(1.0)
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def cmd_run(args: argparse.Namespace) -> int:
    """The embedded default: PostgreSQL, migrations, a worker and the API in one command."""
    from control_plane.core.security import state_dir_secret_key
    from control_plane.core.settings import get_settings
    from control_plane.embedded import start_postgres

    settings = get_settings()
    embedded = not settings.database_url
    if "CANOPY_SECRET_KEY" not in os.environ:
        os.environ["CANOPY_SECRET_KEY"] = state_dir_secret_key(Path(settings.state_dir))
    if embedded:
        os.environ.setdefault("CANOPY_DEV_MODE", "true")
    _reload_settings()
    if _refused("run"):
        return 2
    if embedded:
        os.environ["CANOPY_DATABASE_URL"] = start_postgres(Path(settings.state_dir))
        _reload_settings()
    cmd_migrate(args)
    # uvicorn re-raises SIGTERM after its graceful shutdown; turn it into SystemExit so that the
    # cleanup below (stopping the worker and the local workspace servers) still runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    stop = threading.Event()
    supervisor = threading.Thread(target=_supervise_worker, args=(stop,), daemon=True)
    supervisor.start()
    log.info("Canopy is starting at %s (dev mailbox at /dev/mail)", get_settings().public_url)
    try:
        return cmd_api(args)
    finally:
        stop.set()
        supervisor.join(15)
        _stop_local_workspaces()


def _stop_local_workspaces() -> None:
    """Stop the local workspace servers with the embedded default (they need its PostgreSQL)."""
    from control_plane.core.settings import get_settings
    from control_plane.providers.local import LocalCompute

    settings = get_settings()
    stopped = LocalCompute(Path(settings.state_dir), settings.workspace_ready_timeout_seconds).stop_all()
    log.info("stopped %d workspace server(s); they restart with the next `canopy run`", stopped)


def cmd_create_account(args: argparse.Namespace) -> int:
    """Create a verified staff account and print a token for it (shown once)."""
    from control_plane.accounts.models import Account
    from control_plane.accounts.repository import account_by_email, normalize_email
    from control_plane.core.authz import Role
    from control_plane.core.clock import utcnow
    from control_plane.core.db import session_scope
    from control_plane.core.security import hash_password
    from control_plane.tokens import service as tokens

    role = Role(args.role)
    password = args.password or os.environ.get("CANOPY_NEW_ACCOUNT_PASSWORD") or os.urandom(24).hex()
    with session_scope() as session:
        if account_by_email(session, args.email) is not None:
            log.error("an account with the email %s already exists", args.email)
            return 1
        account = Account(
            email=normalize_email(args.email),
            password_hash=hash_password(password),
            email_verified_at=utcnow(),
            staff_role=role,
        )
        session.add(account)
        session.flush()
        _, secret = tokens.issue(
            session, account_id=account.id, role=role, organization_id=None, name="cli", actor="cli"
        )
    print(secret)
    return 0


def cmd_cells_register(args: argparse.Namespace) -> int:
    """Register a cell from ``pulumi stack output --json`` (validated; errors name the fields)."""
    import json

    from control_plane.cells import service as cells
    from control_plane.core.db import session_scope
    from control_plane.core.problems import Problem

    outputs = json.loads(Path(args.from_json).read_text())
    try:
        with session_scope() as session:
            cell = cells.register(session, outputs, actor="cli")
            name = cell.name
    except Problem as exc:
        details = [f"{e['field']}: {e['detail']}" for e in exc.extra.get("errors", [])] or [exc.detail]
        log.error("cell not registered: %s", "; ".join(details))
        return 1
    log.info("cell %s registered", name)
    return 0


def cmd_cells_list(_: argparse.Namespace) -> int:
    """Print every cell with its state and usage."""
    from control_plane.cells import service as cells
    from control_plane.core.db import session_scope

    with session_scope() as session:
        rows = cells.listing(session)
    row = "{:<20} {:<16} {:<9} {:>10} {:>6}"
    print(row.format("NAME", "REGION", "STATE", "WORKSPACES", "ROOM"))
    for cell in rows:
        print(row.format(cell.name, cell.region, cell.state.value, cell.usage.workspaces, cell.usage.room))
    return 0


def cmd_rotate_credential_keys(args: argparse.Namespace) -> int:
    """Re-encrypt every workspace credential under the newest key of CANOPY_CREDENTIAL_KEYS (idempotent)."""
    from control_plane.credentials import service as credentials
    from control_plane.credentials.keys import UndecryptableCredential

    if _refused("rotate-credential-keys"):
        return 2
    try:
        rotation = credentials.rotate_keys(actor="cli", batch_size=args.batch_size)
    except UndecryptableCredential as exc:
        log.error("%s: put the key that made it back in CANOPY_CREDENTIAL_KEYS, then run this again", exc)
        return 1
    by_key = ", ".join(f"{key_id}: {count}" for key_id, count in sorted(rotation.by_key.items())) or "none"
    print(f"re-encrypted {rotation.reencrypted} credential(s) under key {rotation.key_id}; by key id: {by_key}")
    return 0


def cmd_workspaces_power(args: argparse.Namespace) -> int:
    """Hibernate, wake, delete, cancel a deletion or purge a workspace as an operator at the console, then ask the
    workers to act on it; prints its state (and its purge date while it is pending deletion)."""
    import control_plane.core.all_models  # noqa: F401  (every table, so foreign keys resolve)
    from control_plane.core.db import session_scope
    from control_plane.core.problems import Problem
    from control_plane.reconciler.queue import Cause, defer_reconcile
    from control_plane.workspaces import repository, service
    from control_plane.workspaces.models import Workspace

    def purge(session: Session, ws: Workspace, actor: str) -> None:
        service.purge_row(session, ws, actor, args.reason)

    act = {
        "hibernate": service.hibernate_row,
        "wake": service.wake_row,
        "delete": service.delete_row,
        "cancel-deletion": service.cancel_deletion_row,
        "purge": purge,
    }[args.workspaces_command]
    try:
        with session_scope() as session:
            ws = repository.get(session, args.workspace_id, for_update=True)
            if ws is None:
                log.error("workspace %s not found", args.workspace_id)
                return 1
            act(session, ws, "cli")
            state = ws.lifecycle_state.value
            purge_after = f" (purged after {ws.purge_after.isoformat()})" if ws.purge_after else ""
    except Problem as exc:
        log.error("workspace %s: %s", args.workspace_id, exc.detail)
        return 1
    defer_reconcile(args.workspace_id, Cause.operator)
    print(state + purge_after)
    return 0


def cmd_workspaces_reverify(args: argparse.Namespace) -> int:
    """Run the full plan of every converged workspace (of one cell) again now, behind customer-facing work (after an
    incident, or to check the fleet by hand); prints how many were asked for."""
    from control_plane.reconciler import records
    from control_plane.reconciler.queue import Cause, defer_reconcile

    ids = records.converged_ids(args.cell)
    for workspace_id in ids:
        defer_reconcile(workspace_id, Cause.verify)
    print(f"{len(ids)} workspaces queued for re-verification")
    return 0


def cmd_workspaces_export(args: argparse.Namespace) -> int:
    """Export a workspace as an operator at the console; wait for the archive and print where it is and a link."""
    import control_plane.core.all_models  # noqa: F401  (every table, so foreign keys resolve)
    from control_plane.core.db import session_scope
    from control_plane.core.problems import Problem
    from control_plane.exports import repository as exports
    from control_plane.exports import service
    from control_plane.exports.models import OPEN_STATES, ExportState
    from control_plane.exports.tasks import defer_export
    from control_plane.workspaces import repository

    try:
        with session_scope() as session:
            ws = repository.get(session, args.workspace_id)
            if ws is None:
                log.error("workspace %s not found", args.workspace_id)
                return 1
            export_id = service.start(session, ws, actor="cli").id
    except Problem as exc:
        log.error("workspace %s: %s", args.workspace_id, exc.detail)
        return 1
    defer_export(export_id, args.workspace_id)
    print(f"export {export_id} queued")
    if args.no_wait:
        return 0
    deadline = time.monotonic() + args.timeout
    while True:
        with session_scope() as session:
            export = exports.get(session, export_id)
            assert export is not None
            state, location, link, error = export.state, export.location, service.download_link(export), export.error
        if state not in OPEN_STATES:
            break
        if time.monotonic() > deadline:
            log.error("export %s is still %s (it goes on in the background)", export_id, state.value)
            return 1
        time.sleep(0.5)
    if state is ExportState.failed:
        log.error("export %s failed: %s", export_id, error)
        return 1
    assert location is not None and link is not None
    print(location.get("path") or f"s3://{location['bucket']}/{location['key']}")
    print(f"{link[0]}  (expires {link[1].isoformat()})")
    return 0


def cmd_workspaces_find(args: argparse.Namespace) -> int:
    """Print every workspace that held an address (deleted ones included), newest first, one JSON line each."""
    import json

    import control_plane.core.all_models  # noqa: F401  (every table, so foreign keys resolve)
    from control_plane.core.db import session_scope
    from control_plane.workspaces import repository
    from control_plane.workspaces.schemas import workspace_out

    fields = ("id", "slug", "organization_id", "lifecycle_state", "resume_state", "purge_after", "deleted_at")
    slug = args.address.split(".", 1)[0].strip().lower()
    with session_scope() as session:
        found = [
            workspace_out(ws).model_dump(mode="json", include=set(fields))
            for ws in repository.all_by_slug(session, slug)
        ]
    if not found:
        log.error("no workspace ever held %s", slug)
        return 1
    for shown in found:
        print(json.dumps({field: shown[field] for field in fields}))
    return 0


def cmd_backups_drill(args: argparse.Namespace) -> int:
    """Restore-drill one backup (or, without an id, the periodic sample) now; print each outcome; 1 if any is
    corrupt."""
    import control_plane.core.all_models  # noqa: F401  (every table, so foreign keys resolve)
    from control_plane.backups import drills
    from control_plane.backups.drill_models import DrillOutcome
    from control_plane.core.problems import Problem
    from control_plane.core.settings import get_settings

    settings = get_settings()
    try:
        done = (
            [drills.drill(settings, args.backup_id, "cli")] if args.backup_id else drills.drill_sample(settings, "cli")
        )
    except Problem as exc:
        log.error("backup %s: %s", args.backup_id, exc.detail)
        return 1
    for drill in done:
        problems = "".join(f"\n  {problem}" for problem in drill.problems)
        print(f"backup {drill.backup_id}: {drill.outcome.value} ({drill.duration_seconds:.1f} s){problems}")
    return 1 if any(drill.outcome is DrillOutcome.corrupt for drill in done) else 0


def cmd_backups_schedule(args: argparse.Namespace) -> int:
    """Request the due scheduled backups and discard the expired ones now; print how many."""
    import control_plane.core.all_models  # noqa: F401  (every table, so foreign keys resolve)
    from control_plane.backups import schedule
    from control_plane.core.settings import get_settings

    settings = get_settings()
    requested = schedule.request_scheduled(settings)
    expired = schedule.apply_retention(settings)
    print(f"{len(requested)} scheduled backups requested, {len(expired)} expired backups discarded")
    return 0


def cmd_workspaces_status(args: argparse.Namespace) -> int:
    """Print a workspace as the API shows it, with its reconcile jobs and the live workers (JSON)."""
    import json

    import control_plane.core.all_models  # noqa: F401  (every table, so foreign keys resolve)
    from control_plane.core.db import session_scope
    from control_plane.core.settings import get_settings
    from control_plane.reconciler.queue import reconcile_queue
    from control_plane.workspaces import repository
    from control_plane.workspaces.schemas import workspace_out

    with session_scope() as session:
        ws = repository.get(session, args.workspace_id)
        if ws is None:
            log.error("workspace %s not found", args.workspace_id)
            return 1
        shown = workspace_out(ws).model_dump(mode="json")
    shown["queue"] = reconcile_queue(args.workspace_id, get_settings().stalled_worker_seconds)
    print(json.dumps(shown, indent=2))
    return 0


def cmd_workspaces_maintenance_window(args: argparse.Namespace) -> int:
    """Set or clear an Enterprise workspace's maintenance window as an operator at the console; prints the window
    (JSON; null once cleared)."""
    import json

    from pydantic import ValidationError

    import control_plane.core.all_models  # noqa: F401  (every table, so foreign keys resolve)
    from control_plane.core.db import session_scope
    from control_plane.core.problems import Problem
    from control_plane.workspaces import maintenance, repository
    from control_plane.workspaces.schemas import MaintenanceWindow

    window = None
    if not args.clear:
        try:
            days = [int(day) for day in (args.days or "").split(",") if day.strip()]
            window = MaintenanceWindow(
                days=days, start=args.start or "", duration_minutes=args.minutes or 0, timezone=args.timezone
            )
        except (ValueError, ValidationError) as exc:
            errors = exc.errors() if isinstance(exc, ValidationError) else [{"loc": ["days"], "msg": str(exc)}]
            flags = {"days": "--days", "start": "--start", "duration_minutes": "--minutes", "timezone": "--timezone"}
            log.error("%s", "; ".join(f"{flags.get(str(e['loc'][0]), '--days')}: {e['msg']}" for e in errors))
            return 2
    try:
        with session_scope() as session:
            ws = repository.get(session, args.workspace_id, for_update=True)
            if ws is None:
                log.error("workspace %s not found", args.workspace_id)
                return 1
            shown = maintenance.set_window(session, ws, window, "cli").maintenance_window
    except Problem as exc:
        log.error("workspace %s: %s", args.workspace_id, exc.detail)
        return 1
    print(json.dumps(shown))
    return 0


def _wait_for(read: Callable[[], tuple[bool, dict[str, Any]]], timeout: float, what: str) -> dict[str, Any] | None:
    """Poll ``read`` (done?, shown) every half second until done; None (logged) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        done, shown = read()
        if done:
            return shown
        if time.monotonic() > deadline:
            log.error("%s is still %s (it goes on in the background)", what, shown.get("state"))
            return None
        time.sleep(0.5)


def _list_limit(text: str) -> int:
    """An argparse type: how many backups to list, 1 to :data:`~control_plane.backups.service.MAX_LIST`."""
    from control_plane.backups.service import MAX_LIST

    try:
        limit = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 1 <= limit <= MAX_LIST:
        raise argparse.ArgumentTypeError(f"must be 1 to {MAX_LIST}")
    return limit


def cmd_backups(args: argparse.Namespace) -> int:
    """Back workspaces up, list and show their backups, restore one (as an operator at the console; JSON out)."""
    import json

    from pydantic import ValidationError

    import control_plane.core.all_models  # noqa: F401  (every table, so foreign keys resolve)
    from control_plane.backups import repository as backups
    from control_plane.backups import service
    from control_plane.backups.models import OPEN_BACKUP_STATES, OPEN_RESTORE_STATES, BackupKind
    from control_plane.backups.schemas import CloneRestore, InPlaceRestore, backup_out, restore_out
    from control_plane.backups.tasks import defer_backup
    from control_plane.core.db import session_scope
    from control_plane.core.problems import Problem
    from control_plane.reconciler.queue import Cause, defer_reconcile
    from control_plane.workspaces import repository

    def show_backup(backup_id: uuid.UUID) -> tuple[bool, dict[str, Any]]:
        with session_scope() as session:
            backup = backups.get(session, backup_id)
            if backup is None:
                raise LookupError(f"backup {backup_id} not found")
            shown = backup_out(backup).model_dump(mode="json")
            restore = backups.newest_restore_of(session, backup_id)
            shown["restore"] = restore_out(restore).model_dump(mode="json") if restore else None
            return backup.state not in OPEN_BACKUP_STATES, shown

    def show_restore(restore_id: uuid.UUID) -> tuple[bool, dict[str, Any]]:
        with session_scope() as session:
            restore = backups.get_restore(session, restore_id)
            assert restore is not None
            return restore.state not in OPEN_RESTORE_STATES, restore_out(restore).model_dump(mode="json")

    verb = args.backups_command
    try:
        if verb == "list":
            with session_scope() as session:
                rows = backups.newest_of(session, args.workspace_id, args.limit)
                print(json.dumps([backup_out(b).model_dump(mode="json") for b in rows], indent=2))
            return 0
        if verb == "show":
            print(json.dumps(show_backup(args.backup_id)[1], indent=2))
            return 0
        if verb == "create":
            with session_scope() as session:
                ws = repository.get(session, args.workspace_id, for_update=True)
                if ws is None:
                    raise LookupError(f"workspace {args.workspace_id} not found")
                backup_id = service.request_backup(session, ws, BackupKind.manual, "cli").id
            defer_backup(backup_id, args.workspace_id)
            shown = show_backup(backup_id)[1] if args.no_wait else None
            if shown is None:
                shown = _wait_for(lambda: show_backup(backup_id), args.timeout, f"backup {backup_id}")
            if shown is None:
                return 1
            print(json.dumps(shown, indent=2))
            return 0 if shown["state"] != "failed" else 1
        body: CloneRestore | InPlaceRestore
        try:
            if args.clone is not None:
                body = CloneRestore(mode="clone", slug=args.clone, display_name=args.display_name)
            else:
                body = InPlaceRestore(mode="in_place", confirm=args.confirm or "")
        except ValidationError as exc:
            fields = "; ".join(f"--{'-'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            log.error("%s", fields.replace("--slug", "--clone").replace("display_name", "display-name"))
            return 2
        with session_scope() as session:
            backup = backups.get(session, args.backup_id)
            if backup is None:
                raise LookupError(f"backup {args.backup_id} not found")
            ws = repository.get(session, backup.workspace_id, for_update=True)
            assert ws is not None
            restore = service.start_restore(session, ws, backup, body, "cli", None)
            restore_id, target_id = restore.id, restore.target_workspace_id
        defer_reconcile(target_id, Cause.restore)
        shown = show_restore(restore_id)[1] if args.no_wait else None
        if shown is None:
            shown = _wait_for(lambda: show_restore(restore_id), args.timeout, f"restore {restore_id}")
        if shown is None:
            return 1
        print(json.dumps(shown, indent=2))
        return 0 if shown["state"] != "failed" else 1
    except LookupError as exc:
        log.error("%s", exc)
        return 1
    except Problem as exc:
        log.error("%s", exc.detail)
        return 1


def cmd_billing(args: argparse.Namespace) -> int:
    """Run the billing of due organizations (or one) now, or collect today's seat snapshots now."""
    import control_plane.core.all_models  # noqa: F401  (every table, so foreign keys resolve)
    from control_plane.core.clock import utcnow
    from control_plane.core.db import session_scope
    from control_plane.subscriptions import repository, seats, tasks

    if args.billing_command == "collect-seats":
        collected = seats.collect()
        print(f"recorded {collected.recorded} snapshots, {collected.failed} servers unread")
        return 1 if collected.failed else 0
    if args.organization_id is not None:
        due = [args.organization_id]
    else:
        with session_scope() as session:
            due = repository.due(session, utcnow(), tasks.TICK_BATCH)
    for organization_id in due:
        outcome = tasks.bill(organization_id)
        print(f"{organization_id}: {outcome.invoices_created} invoices, {outcome.charges} charges")
    return 0


def cmd_contracts(args: argparse.Namespace) -> int:
    """Enterprise contracts at the console (JSON out): create, list, show, renew, record a payment, list the
    overdue invoices, or do the contract runs now."""
    import control_plane.core.all_models  # noqa: F401  (every table, so foreign keys resolve)
    from control_plane.contracts import console
    from control_plane.core.problems import Problem

    try:
        print(console.COMMANDS[args.contracts_command](args))
    except Problem as exc:
        log.error("%s", exc.detail)
        return 1
    return 0


def cmd_clock(args: argparse.Namespace) -> int:
    """Show the deployment's clock, or move it forward (dev mode with CANOPY_CLOCK_FILE only)."""
    from datetime import timedelta

    from control_plane.core.clock import advance, utcnow
    from control_plane.core.settings import get_settings

    settings = get_settings()
    if args.clock_command == "advance":
        if not (settings.dev_mode and settings.clock_file):
            print("canopy clock advance: needs CANOPY_DEV_MODE=true and CANOPY_CLOCK_FILE", file=sys.stderr)
            return 2
        advance(settings.clock_file, timedelta(days=args.days, hours=args.hours))
    print(utcnow().isoformat())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command-line grammar."""
    parser = argparse.ArgumentParser(prog="canopy", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, help_text in (
        ("run", cmd_run, "embedded default: PostgreSQL + worker + API on http://localhost:8000"),
        ("api", cmd_api, "serve the API and web pages"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--host")
        p.add_argument("--port", type=int)
        p.set_defaults(func=func)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    worker = sub.add_parser("worker", help="run a reconciler worker (options after --)")
    worker.add_argument("worker_args", nargs=argparse.REMAINDER)
    worker.set_defaults(func=cmd_worker)
    account = sub.add_parser("create-account", help="create a staff account and print an API token")
    account.add_argument("--email", required=True)
    account.add_argument("--role", required=True, choices=["sales", "finance", "operator", "support", "admin"])
    account.add_argument("--password", help="defaults to CANOPY_NEW_ACCOUNT_PASSWORD or a random one")
    account.set_defaults(func=cmd_create_account)
    rotate = sub.add_parser(
        "rotate-credential-keys", help="re-encrypt workspace credentials under the newest CANOPY_CREDENTIAL_KEYS key"
    )
    rotate.add_argument("--batch-size", type=int, default=500, help="credentials per transaction (default 500)")
    rotate.set_defaults(func=cmd_rotate_credential_keys)
    cells = sub.add_parser("cells", help="manage cells").add_subparsers(dest="cells_command", required=True)
    register = cells.add_parser("register", help="register a cell from its stack outputs")
    register.add_argument("--from-json", required=True, metavar="FILE", help="`pulumi stack output --json` of the cell")
    register.set_defaults(func=cmd_cells_register)
    cells.add_parser("list", help="list cells with their usage").set_defaults(func=cmd_cells_list)
    workspaces = sub.add_parser("workspaces", help="operate workspaces")
    verbs = workspaces.add_subparsers(dest="workspaces_command", required=True)
    for verb, help_text in (
        ("hibernate", "stop a trialing, active, past-due or suspended workspace's server, keep its data"),
        ("wake", "return a hibernated workspace to the state it was hibernated from"),
        ("delete", "schedule a workspace's deletion (pending until its purge date; cancellable until then)"),
        ("cancel-deletion", "return a workspace pending deletion to the state it was deleted from"),
        ("purge", "purge a workspace pending deletion now (after its final backup), with a --reason"),
    ):
        verb_parser = verbs.add_parser(verb, help=help_text)
        verb_parser.add_argument("workspace_id", type=uuid.UUID)
        if verb == "purge":
            verb_parser.add_argument("--reason", required=True, help="why it cannot wait (kept in the audit log)")
        verb_parser.set_defaults(func=cmd_workspaces_power)
    reverify = verbs.add_parser("reverify", help="re-verify every converged workspace now (lowest priority)")
    reverify.add_argument("--cell", default=None, help="only the workspaces of this cell")
    reverify.set_defaults(func=cmd_workspaces_reverify)
    export = verbs.add_parser("export", help="export a workspace (Mattermost bulk-export archive) and print a link")
    export.add_argument("workspace_id", type=uuid.UUID)
    export.add_argument("--no-wait", action="store_true", help="queue the export and return")
    export.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for the archive (default 3600)")
    export.set_defaults(func=cmd_workspaces_export)
    find = verbs.add_parser("find", help="every workspace that held an address (deleted ones too), as JSON lines")
    find.add_argument("address", help="<slug> or <slug>.<base domain>")
    find.set_defaults(func=cmd_workspaces_find)
    status = verbs.add_parser("status", help="show a workspace, its reconcile jobs and the live workers (JSON)")
    status.add_argument("workspace_id", type=uuid.UUID)
    status.set_defaults(func=cmd_workspaces_status)
    window = verbs.add_parser("maintenance-window", help="set or clear an Enterprise workspace's maintenance window")
    window.add_argument("workspace_id", type=uuid.UUID)
    window.add_argument("--days", help="weekdays, 0 = Monday, comma-separated (e.g. 1,3)")
    window.add_argument("--start", help="local start time, HH:MM")
    window.add_argument("--minutes", type=int, help="how long it lasts (30 to 1440)")
    window.add_argument("--timezone", default="UTC", help="an IANA time zone name (default UTC)")
    window.add_argument("--clear", action="store_true", help="drop the window (rollouts restart it at any time)")
    window.set_defaults(func=cmd_workspaces_maintenance_window)
    backups = sub.add_parser("backups", help="back workspaces up and restore them (JSON out)")
    backup_verbs = backups.add_subparsers(dest="backups_command", required=True)
    create = backup_verbs.add_parser("create", help="back a workspace up now and wait for the backup")
    create.add_argument("workspace_id", type=uuid.UUID)
    listing = backup_verbs.add_parser("list", help="a workspace's newest backups")
    listing.add_argument("workspace_id", type=uuid.UUID)
    listing.add_argument("--limit", type=_list_limit, default=20, help="1 to 100 (default 20)")
    show = backup_verbs.add_parser("show", help="one backup and its newest restore")
    show.add_argument("backup_id", type=uuid.UUID)
    restore = backup_verbs.add_parser("restore", help="restore a backup into a new workspace or in place, and wait")
    restore.add_argument("backup_id", type=uuid.UUID)
    target = restore.add_mutually_exclusive_group(required=True)
    target.add_argument("--clone", metavar="SLUG", help="into a new workspace at this address (the backup's users)")
    target.add_argument("--in-place", action="store_true", help="over the workspace (what was posted since is lost)")
    restore.add_argument("--confirm", metavar="SLUG", help="with --in-place: the workspace's slug")
    restore.add_argument("--display-name", help="with --clone: the new workspace's name")
    for waiting in (create, restore):
        waiting.add_argument("--no-wait", action="store_true", help="queue it and return")
        waiting.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait (default 3600)")
    for backup_parser in (create, listing, show, restore):
        backup_parser.set_defaults(func=cmd_backups)
    drill = backup_verbs.add_parser("drill", help="restore-drill a backup (or the periodic sample) now")
    drill.add_argument("backup_id", type=uuid.UUID, nargs="?", help="the backup (default: the periodic sample)")
    drill.set_defaults(func=cmd_backups_drill)
    backup_verbs.add_parser(
        "schedule", help="request the due scheduled backups and discard the expired ones now"
    ).set_defaults(func=cmd_backups_schedule)
    release_cli.add_parsers(sub)
    move_cli.add_parsers(sub)
    sales_commands.add_parsers(sub)
    billing = sub.add_parser("billing", help="self-serve billing").add_subparsers(dest="billing_command", required=True)
    run = billing.add_parser("run", help="do the billing that is due now (trials, invoices, charges, dunning)")
    run.add_argument("--organization-id", type=uuid.UUID, help="only this organization, due or not")
    run.set_defaults(func=cmd_billing)
    billing.add_parser("collect-seats", help="record today's seat snapshots now").set_defaults(func=cmd_billing)
    _add_contract_parsers(sub)
    clock = sub.add_parser("clock", help="the deployment's clock").add_subparsers(dest="clock_command", required=True)
    clock.add_parser("show", help="print the clock's now").set_defaults(func=cmd_clock)
    advance = clock.add_parser("advance", help="move the clock forward (dev mode, CANOPY_CLOCK_FILE)")
    advance.add_argument("--days", type=int, default=0)
    advance.add_argument("--hours", type=int, default=0)
    advance.set_defaults(func=cmd_clock)
    return parser


def _add_contract_parsers(sub: Any) -> None:
    contracts = sub.add_parser("contracts", help="Enterprise contracts (JSON out)")
    verbs = contracts.add_subparsers(dest="contracts_command", required=True)
    create = verbs.add_parser("create", help="give an organization its 12-month contract")
    create.add_argument("--organization-id", type=uuid.UUID, required=True)
    create.add_argument("--seats", type=int, required=True, help="seats purchased")
    create.add_argument("--annual-price-per-seat-cents", type=int, required=True)
    create.add_argument("--start-date", required=True, help="YYYY-MM-DD")
    create.add_argument("--payment-terms-days", type=int, default=30)
    create.add_argument("--billing-contact-email", required=True)
    create.add_argument("--billing-contact-name", required=True)
    verbs.add_parser("list", help="every contract")
    for verb, help_text in (("show", "a contract, its invoices, seats and licence"), ("renew", "renew for 12 months")):
        verbs.add_parser(verb, help=help_text).add_argument("contract_id", type=uuid.UUID)
    payment = verbs.add_parser("record-payment", help="record a bank transfer received for an invoice")
    payment.add_argument("invoice_id", type=uuid.UUID)
    payment.add_argument("--reference", required=True)
    verbs.add_parser("overdue", help="the unpaid invoices past their due date")
    run = verbs.add_parser("run", help="do what is due on every contract (or one) now")
    run.add_argument("--contract-id", type=uuid.UUID)
    contracts.set_defaults(func=cmd_contracts)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``canopy`` console script."""
    _configure_logging()
    args = build_parser().parse_args(argv)
    started = time.monotonic()
    code: int = args.func(args)
    log.debug("%s finished in %.1fs", args.command, time.monotonic() - started)
    return code


if __name__ == "__main__":
    sys.exit(main())
