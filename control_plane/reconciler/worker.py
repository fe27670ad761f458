"""``canopy worker``: run reconcilers and other background jobs until stopped (SIGINT/SIGTERM)."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys

from control_plane.core.db import database_url
from control_plane.core.migrate import DatabaseNotMigrated, require_migrated
from control_plane.core.settings import get_settings
from control_plane.credentials.keys import insecure_configuration

logger = logging.getLogger(__name__)

FETCH_POLLING_SECONDS = 2.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="canopy worker", description=__doc__)
    parser.add_argument("--concurrency", type=int, default=4, help="jobs run at once (default 4)")
    parser.add_argument("--name", default=None, help="worker name in logs (default host-pid)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a worker; returns the process exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    reason = insecure_configuration(get_settings())
    if reason:
        print(f"canopy worker: {reason}", file=sys.stderr)
        return 2
    try:
        require_migrated(database_url())
    except (DatabaseNotMigrated, RuntimeError) as exc:
        print(f"canopy worker: {exc}", file=sys.stderr)
        return 2
    from control_plane.backups import periodic as backup_periodic  # noqa: F401  (schedules, retention, drills)
    from control_plane.backups import tasks as backup_tasks  # noqa: F401  (registers the backup task)
    from control_plane.contracts import tasks as contract_tasks  # noqa: F401  (registers the contract run)
    from control_plane.core.task_queue import app
    from control_plane.drift import tasks as drift_tasks  # noqa: F401  (registers the periodic drift detection)
    from control_plane.exports import tasks as export_tasks  # noqa: F401  (registers the export task)
    from control_plane.mail import tasks as mail_tasks  # noqa: F401  (registers the mail delivery task)
    from control_plane.moves import tasks as move_tasks  # noqa: F401  (registers the enterprise-move task)
    from control_plane.reconciler import tasks  # registers the tasks on the app
    from control_plane.rollouts import tasks as rollout_tasks  # noqa: F401  (registers the rollout engine's tasks)
    from control_plane.subscriptions import event_tasks  # noqa: F401  (registers the Stripe event tasks)
    from control_plane.subscriptions import tasks as billing_tasks  # noqa: F401  (registers the billing tasks)
    from control_plane.workspaces import tasks as workspace_tasks  # noqa: F401  (registers idle hibernation)

    settings = get_settings()
    tasks.warm_up()
    app.run_worker(
        concurrency=max(1, args.concurrency),
        name=args.name or f"{socket.gethostname()}-{os.getpid()}",
        update_heartbeat_interval=settings.worker_heartbeat_seconds,
        stalled_worker_timeout=settings.stalled_worker_seconds,
        fetch_job_polling_interval=FETCH_POLLING_SECONDS,
        delete_jobs="successful",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
