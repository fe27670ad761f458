"""Organizations invoiced per second by the billing run, against the raw rate of the same Stripe calls made bare to
localstripe, and seat collection from live workspace servers.

Part 1, invoicing. Starts localstripe (tests/harness, store in memory), a control-plane database on the machine's
PostgreSQL with billing on (``CANOPY_STRIPE_DIALECT=localstripe``), and W worker processes with a billing tick
every second (their start is not timed). Then R rounds of two sides, alternating which goes first (raw in round
1). Each side starts from an emptied localstripe, since localstripe scans its whole store in list calls and on
``Invoice.create``, so what one side left would slow the other; its set-up is not timed:

- canopy: set-up (the fixture state is written directly, not through the product paths): N organizations, each
  with an owner, one Professional workspace row (no server: invoicing does not need one, and its next reconcile
  is put off so the reconciler leaves it alone), an ``active`` subscription paid since the 1st of last month (so
  exactly one invoice, last month's, is due), a localstripe customer with a default card (``pm_card_visa``), and
  last month's seat snapshots (one before the month began, three changes during it). Timed: the N subscriptions
  are made due at once (``next_run_at = now()``) until every organization's invoice is ``paid`` in our database:
  the workers' tick defers one ``bill_organization`` job per organization, which prices the month from the
  snapshots, creates the invoice at localstripe and charges it;
- raw: N customers set up the same way at localstripe. Timed: with W x 4 threads and no control-plane logic, the
  calls localstripe needs to collect one invoice of the same lines: the $0 invoicing subscription the gateway
  hangs invoices on, one invoice item per line, ``invoices.create``, ``invoices.pay``.

After each side, every organization is checked: one invoice row, paid, of the amount its snapshots give, and
localstripe holding that one non-zero invoice for its customer (the $0 invoices of the invoicing subscription
aside), paid, of our amount; the raw customers likewise. CPU (user + system, from /proc) per organization: the
workers' and the control-plane database's PostgreSQL backends' during the canopy side, this process's during the
raw one, and localstripe's on each side; their sums give a CPU ratio that a busy machine does not blur.

Part 2, seat collection. A second control-plane database with billing on and the local runtime: S Professional
workspaces are created by the service signup uses and the workers converge them to ``trialing`` (S workspace
servers as local processes, each organization with its subscription). The workers are stopped, then
``seats.collect(reason=billing_event)`` is called in this process K times (after one untimed call): servers read
per second, and this process's CPU (``time.process_time``) per server read; the servers' CPU per read too.
Every server process and database is removed at the end, on failure or Ctrl-C as well.

    .venv/bin/python bench/billing.py [--organizations 1000] [--workers 2] [--rounds 1] [--servers 20]
        [--repetitions 5] [--timeout 1200] [--skip-seats]

Target: invoiced / raw >= 0.5.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
import stripe
from psycopg import sql
from sqlalchemy import func, insert, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Nothing below reads the control-plane settings at import: they are read once the environment is set.
from bench.provisioning import ADMIN_URL, admin, cpu_seconds, wait_workers  # noqa: E402
from billing.engine.periods import InvoiceSpan, Period, midnight, period_of  # noqa: E402
from billing.engine.pricing import PROFESSIONAL, price_span  # noqa: E402
from billing.engine.seats import SeatSnapshot as EngineSnapshot  # noqa: E402
from billing.engine.seats import seats_per_day  # noqa: E402
from billing.engine.status import BillingStatus  # noqa: E402
from billing.gateway import InvoiceRequest, idempotency_key, invoice_request, line_period  # noqa: E402
from billing.stripe_gateway import INVOICE_KEY, INVOICING_PLAN, LINE_KEY, ORGANIZATION_KEY, PRICE_KEY  # noqa: E402
from control_plane.accounts.models import Account, Membership  # noqa: E402
from control_plane.core.authz import Role  # noqa: E402
from control_plane.core.db import reset_engine, session_scope  # noqa: E402
from control_plane.core.migrate import upgrade  # noqa: E402
from control_plane.core.settings import get_settings  # noqa: E402
from control_plane.core.task_queue import close_sync_app  # noqa: E402
from control_plane.organizations.models import Organization  # noqa: E402
from control_plane.reconciler.queue import Cause, defer_reconcile  # noqa: E402
from control_plane.subscriptions import seats  # noqa: E402
from control_plane.subscriptions.gateway import payment_gateway  # noqa: E402
from control_plane.subscriptions.models import Invoice, InvoiceState, SeatSnapshot, SnapshotReason, Subscription  # noqa: E402
from control_plane.workspaces.lifecycle import Lifecycle  # noqa: E402
from control_plane.workspaces.models import Tier, Workspace  # noqa: E402
from tests.harness.localstripe import API_KEY, LocalStripe, start_localstripe  # noqa: E402
from tests.reconciler.conftest import FAST_ENV, Plane, all_server_pids, secret_env  # noqa: E402

CONCURRENCY = 4  # jobs per worker process; the raw side uses as many threads in all
CARD = "pm_card_visa"
PUT_OFF = timedelta(days=3650)  # the set-up's subscriptions wait for the timed start; its workspaces never reconcile
PROGRESS = 60.0  # seconds between progress lines of a long canopy side
PLAN = f"{INVOICING_PLAN}-{PROFESSIONAL.currency}"  # the $0 plan the gateway's invoicing subscriptions are on


STOPPING = threading.Event()  # the thread pools' tasks stop starting work once it is set


class Stop(Exception):
    """SIGTERM or the time bound: stop and clean up."""


def _stop(signum: int, _frame: FrameType | None) -> None:
    STOPPING.set()
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Stop(signal.Signals(signum).name)


# -- control planes -------------------------------------------------------------------------------------------


def control_plane(database: str, work: Path, overrides: dict[str, str]) -> Plane:
    """A migrated control-plane database, configured in this process and for the workers ``Plane`` starts."""
    admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    url = f"{ADMIN_URL.rpartition('/')[0]}/{database}"
    upgrade(url)
    state_dir, log_dir = work / database / "state", work / database / "logs"
    state_dir.mkdir(parents=True)
    log_dir.mkdir()
    env = {"CANOPY_DATABASE_URL": url, "CANOPY_STATE_DIR": str(state_dir), **secret_env(), **overrides}
    for key in [k for k in os.environ if k.startswith("CANOPY_")]:
        del os.environ[key]
    os.environ.update(env)
    get_settings.cache_clear()
    reset_engine()
    close_sync_app()
    return Plane(url=url, state_dir=state_dir, log_dir=log_dir, env=dict(os.environ))


def billing_env(server: LocalStripe) -> dict[str, str]:
    """Billing on, against localstripe; nothing periodic in this process's settings (the workers get a tick)."""
    return {
        "CANOPY_STRIPE_API_KEY": API_KEY,
        "CANOPY_STRIPE_API_BASE": server.endpoint,
        "CANOPY_STRIPE_DIALECT": "localstripe",
        "CANOPY_BILLING_RUN_SECONDS": "0",
        "CANOPY_BILLING_SEAT_COLLECTION_SECONDS": "0",
        "CANOPY_RECONCILE_RESYNC_SECONDS": "3600",  # a resync of every workspace would only add noise
    }


def start_workers(plane: Plane, count: int, **env: str) -> list[int]:
    """``count`` workers of ``CONCURRENCY`` jobs, registered; their pids."""
    for _ in range(count):
        plane.start_worker(concurrency=CONCURRENCY, **env)
    wait_workers(plane.url, count)
    return [worker.pid for worker in plane.workers]


def drop_database(plane: Plane | None, database: str) -> None:
    """Stop what ``plane`` started (workers, workspace servers and their databases) and drop ``database``."""
    close_sync_app()
    reset_engine()
    if plane is not None:
        plane.stop_workers()
        plane.kill_servers()
        plane.drop_workspace_databases()
    admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))


# -- part 1: set-up -------------------------------------------------------------------------------------------


def last_month(today: date) -> Period:
    """The calendar month before ``today``'s: the one invoice due."""
    return period_of(period_of(today).start - timedelta(days=1))


def seat_changes(index: int, month: Period) -> list[EngineSnapshot]:
    """Organization ``index``'s seat snapshots of ``month``: one before it began, three changes during it."""
    base = 1 + index % 17
    start = midnight(month.start)
    return [
        EngineSnapshot(start - timedelta(hours=6), base),
        EngineSnapshot(start + timedelta(days=7, hours=10), base + 2),
        EngineSnapshot(start + timedelta(days=14, hours=15), base + 1),
        EngineSnapshot(start + timedelta(days=21, hours=9), base + 4),
    ]


def month_request(index: int, month: Period, invoice_key: str, customer_id: str, price_id: str) -> InvoiceRequest:
    """The gateway request of organization ``index``'s month, priced by the engine from its snapshots."""
    span = InvoiceSpan(month, month.start, month.end)
    draft = price_span(span, seats_per_day(seat_changes(index, month), span.each_day()), PROFESSIONAL)
    return invoice_request(invoice_key, customer_id, draft, price_id)


@dataclass(frozen=True)
class Customer:
    """A localstripe customer with a default card, and the organization (or raw stand-in) it is for."""

    organization_id: uuid.UUID
    index: int
    customer_id: str
    payment_method_id: str


def make_customers(client: stripe.StripeClient, organization_ids: list[uuid.UUID], threads: int) -> list[Customer]:
    """A customer with ``pm_card_visa`` as its default payment method for each organization (as adding a card
    makes it)."""

    def one(item: tuple[int, uuid.UUID]) -> Customer:
        if STOPPING.is_set():
            raise Stop("stopping")
        index, organization_id = item
        customer = client.v1.customers.create(
            {
                "email": f"owner-{organization_id.hex[:12]}@example.com",
                "name": f"Org {index}",
                "metadata": {ORGANIZATION_KEY: str(organization_id)},
            }
        )
        card = client.v1.payment_methods.attach(CARD, {"customer": customer.id})
        client.v1.customers.update(customer.id, {"invoice_settings": {"default_payment_method": card.id}})
        return Customer(organization_id, index, str(customer.id), str(card.id))

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, enumerate(organization_ids)))


def insert_organizations(customers: list[Customer], month: Period, tag: str) -> None:
    """The organizations' rows: owner, membership, one Professional workspace, the subscription (due only once
    made so), and last month's seat snapshots."""
    settings = get_settings()
    now = datetime.now(UTC)
    paid_from = midnight(month.start)
    accounts, organizations, memberships, workspaces, subscriptions, snapshots = [], [], [], [], [], []
    for c in customers:
        account_id, workspace_id, org = uuid.uuid4(), uuid.uuid4(), c.organization_id
        accounts.append({"id": account_id, "email": f"owner-{org.hex[:12]}@example.com", "password_hash": "x"})
        organizations.append({"id": org, "name": f"Org {tag} {c.index}"})
        memberships.append({"id": uuid.uuid4(), "organization_id": org, "account_id": account_id, "role": Role.owner})
        workspaces.append(
            {
                "id": workspace_id,
                "organization_id": org,
                "slug": f"bill-{tag}-{c.index}",
                "display_name": f"Team {c.index}",
                "tier": Tier.professional,
                "region": settings.default_region,
                "desired_release": settings.default_release,
                "lifecycle_state": Lifecycle.active,
                "conditions": [],
                "outputs": {},
                "generation": 1,
                "observed_generation": 1,
                "reconcile_attempts": 0,
                "next_attempt_at": now + PUT_OFF,
            }
        )
        subscriptions.append(
            {
                "organization_id": org,
                "status": BillingStatus.active,
                "trial_started_at": paid_from - timedelta(days=14),
                "trial_ends_at": paid_from,
                "paid_intervals": [[paid_from.isoformat(), None]],
                "customer_id": c.customer_id,
                "payment_method_id": c.payment_method_id,
                "card_brand": "visa",
                "card_last4": "4242",
                "payment_method_added_at": paid_from - timedelta(days=3),
                "next_run_at": now + PUT_OFF,
            }
        )
        snapshots += [
            {
                "organization_id": org,
                "workspace_id": workspace_id,
                "taken_at": s.taken_at,
                "day": s.taken_at.date(),
                "seats": s.seats,
                "reason": SnapshotReason.daily,
            }
            for s in seat_changes(c.index, month)
        ]
    with session_scope() as session:
        for model, rows in [
            (Account, accounts),
            (Organization, organizations),
            (Membership, memberships),
            (Workspace, workspaces),
            (Subscription, subscriptions),
            (SeatSnapshot, snapshots),
        ]:
            session.execute(insert(model), rows)


# -- part 1: timed sides --------------------------------------------------------------------------------------


def backend_cpu(conn: psycopg.Connection[Any]) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend of ``conn``'s database but ``conn``'s own (from /proc)."""
    query = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    found = {}
    for (pid,) in conn.execute(query).fetchall():
        with contextlib.suppress(OSError):  # gone meanwhile
            found[pid] = cpu_seconds([pid])
    return found


def run_canopy(url: str, customers: list[Customer], timeout: float) -> tuple[float, float]:
    """Make the organizations' billing run due now and wait until each invoice is paid; the elapsed seconds and the
    CPU seconds of the database's PostgreSQL backends meanwhile (of the connections open at the end)."""
    ids = [c.organization_id for c in customers]
    query = "SELECT count(*) FROM invoices WHERE organization_id = ANY(%s) AND state = 'paid'"
    with psycopg.connect(url, autocommit=True) as conn:
        backends = backend_cpu(conn)
        started = reported = time.monotonic()
        conn.execute("UPDATE subscriptions SET next_run_at = now() WHERE organization_id = ANY(%s)", [ids])
        while True:
            row = conn.execute(query, [ids]).fetchone()
            paid, elapsed = row[0] if row else 0, time.monotonic() - started
            if paid == len(ids):
                after = backend_cpu(conn)
                return elapsed, sum(cpu - backends.get(pid, 0.0) for pid, cpu in after.items())
            if elapsed > timeout:
                raise SystemExit(f"only {paid} of {len(ids)} organizations were invoiced within {timeout:g} s")
            if time.monotonic() - reported > PROGRESS:
                print(f"  canopy: {paid} of {len(ids)} paid after {elapsed:.0f} s")
                reported = time.monotonic()
            time.sleep(0.1)


def run_raw(client: stripe.StripeClient, requests: list[InvoiceRequest], threads: int) -> float:
    """The bare calls that invoice and charge each request's customer on localstripe; the elapsed seconds."""
    v1 = client.v1

    def one(request: InvoiceRequest) -> None:
        if STOPPING.is_set():
            raise Stop("stopping")
        key = request.invoice_key
        items: Any = {"customer": request.customer_id, "items": [{"plan": PLAN}]}
        subject = f"customer:{request.customer_id}"
        v1.subscriptions.create(items, {"idempotency_key": idempotency_key(subject, "invoicing-subscription")})
        for line in request.lines:
            start, end = line_period(line)
            params: Any = {
                "customer": request.customer_id,
                "amount": line.amount_cents,
                "currency": request.currency,
                "description": line.description,
                "metadata": {INVOICE_KEY: key, LINE_KEY: line.key, PRICE_KEY: str(request.price_id)},
                "period_start": start,
                "period_end": end,
            }
            v1.invoice_items.create(params, {"idempotency_key": idempotency_key(f"line:{line.key}", "create")})
        invoice: Any = {"customer": request.customer_id, "description": request.description}
        created = v1.invoices.create(invoice, {"idempotency_key": idempotency_key(f"invoice:{key}", "create")})
        v1.invoices.pay(str(created.id), None, {"idempotency_key": idempotency_key(f"invoice:{key}", "pay:1")})

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, requests))
    return time.monotonic() - started


# -- part 1: verification -------------------------------------------------------------------------------------


def held_invoices(client: stripe.StripeClient, customers: int) -> dict[str, list[tuple[str, str, int]]]:
    """The non-zero invoices localstripe holds (the $0 invoices of the invoicing subscriptions aside) by customer:
    id, status and amount paid."""
    listing = client.v1.invoices.list({"limit": 10 * customers})  # one page: localstripe scans its store for each
    if listing.has_more:
        raise SystemExit("localstripe holds more invoices than expected")
    held: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
    for invoice in listing.data:
        if invoice.amount_due:
            held[str(invoice.customer)].append((str(invoice.id), str(invoice.status), int(invoice.amount_paid)))
    return held


def one_paid(held: dict[str, list[tuple[str, str, int]]], customer_id: str, amount: int, invoice_id: str) -> str:
    """What is wrong unless the customer has exactly one invoice (``invoice_id``, or any), paid, of ``amount``."""
    found = held.get(customer_id, [])
    if len(found) == 1 and found[0][1:] == ("paid", amount) and invoice_id in ("", found[0][0]):
        return ""
    return f"customer {customer_id}: localstripe holds {found}, not one paid invoice of {amount}"


def verify_canopy(client: stripe.StripeClient, customers: list[Customer], month: Period) -> list[str]:
    """Each organization has one invoice row, of last month, paid, of the amount its snapshots give, and that
    invoice is the one localstripe holds for its customer, paid, of our amount."""
    held = held_invoices(client, len(customers))
    ours: dict[uuid.UUID, list[Invoice]] = defaultdict(list)
    with session_scope() as session:
        query = select(Invoice).where(Invoice.organization_id.in_([c.organization_id for c in customers]))
        for row in session.scalars(query):
            ours[row.organization_id].append(row)
    problems = []
    for c in customers:
        rows = ours.get(c.organization_id, [])
        expected = month_request(c.index, month, "-", c.customer_id, "-").total_cents
        if [(r.period, r.state, r.amount_cents) for r in rows] != [(month.key, InvoiceState.paid, expected)]:
            found = [(r.period, r.state.value, r.amount_cents) for r in rows]
            problems.append(f"organization {c.organization_id}: invoices {found}, not one paid of {expected}")
        else:
            problems.append(one_paid(held, c.customer_id, expected, str(rows[0].gateway_invoice_id)))
    return [problem for problem in problems if problem]


def verify_raw(client: stripe.StripeClient, requests: list[InvoiceRequest]) -> list[str]:
    """Each raw customer has one invoice at localstripe, paid, of the request's amount."""
    held = held_invoices(client, len(requests))
    problems = [one_paid(held, r.customer_id, r.total_cents, "") for r in requests]
    return [problem for problem in problems if problem]


# -- part 1 ---------------------------------------------------------------------------------------------------


@dataclass
class Totals:
    """Seconds and CPU seconds summed over the rounds."""

    canopy: float = 0.0
    raw: float = 0.0
    control_cpu: float = 0.0
    database_cpu: float = 0.0
    raw_client_cpu: float = 0.0
    localstripe_canopy: float = 0.0
    localstripe_raw: float = 0.0
    rounds: list[dict[str, float]] = field(default_factory=list)


def invoicing(args: argparse.Namespace, server: LocalStripe, work: Path) -> dict[str, Any]:
    database = f"bench_billing_{os.getpid()}"
    plane: Plane | None = None
    try:
        plane = control_plane(database, work, billing_env(server))
        url, client, localstripe = plane.url, server.client(), [server.process.pid]
        threads = args.workers * CONCURRENCY
        started = time.monotonic()
        pids = start_workers(plane, args.workers, CANOPY_BILLING_RUN_SECONDS="1")
        print(f"workers: {args.workers} x {CONCURRENCY} jobs, up in {time.monotonic() - started:.1f} s (not timed)")
        month = last_month(datetime.now(UTC).date())
        n: int = args.organizations
        print(f"organizations: {n} per round and side, {args.rounds} rounds, invoicing {month.key}")
        totals = Totals()
        problems: list[str] = []

        def set_up(round_: int, side: str) -> tuple[list[Customer], str]:
            """An emptied localstripe (each side starts from the same store) with the gateway's plans, and N
            customers with their card; the seat price's id."""
            started = time.monotonic()
            server.flush()
            plan: Any = {"id": PLAN, "amount": 0, "currency": "usd", "interval": "month", "product": {"name": PLAN}}
            client.v1.plans.create(plan)
            price_id = payment_gateway(get_settings()).ensure_seat_price(PROFESSIONAL)
            customers = make_customers(client, [uuid.uuid4() for _ in range(n)], threads)
            if side == "canopy":
                insert_organizations(customers, month, str(round_))
            print(f"round {round_ + 1}, {side}: set up in {time.monotonic() - started:.1f} s (not timed)")
            return customers, price_id

        def canopy_side(round_: int) -> float:
            customers, _ = set_up(round_, "canopy")
            cpu, emulated = cpu_seconds(pids), cpu_seconds(localstripe)
            elapsed, database_cpu = run_canopy(url, customers, args.timeout)
            totals.control_cpu += cpu_seconds(pids) - cpu
            totals.database_cpu += database_cpu
            totals.localstripe_canopy += cpu_seconds(localstripe) - emulated
            totals.canopy += elapsed
            problems.extend(verify_canopy(client, customers, month))
            return elapsed

        def raw_side(round_: int) -> float:
            customers, price_id = set_up(round_, "raw")
            requests = [month_request(c.index, month, str(uuid.uuid4()), c.customer_id, price_id) for c in customers]
            emulated, own = cpu_seconds(localstripe), time.process_time()
            elapsed = run_raw(client, requests, threads)
            totals.raw_client_cpu += time.process_time() - own
            totals.localstripe_raw += cpu_seconds(localstripe) - emulated
            totals.raw += elapsed
            problems.extend(verify_raw(client, requests))
            return elapsed

        for round_ in range(args.rounds):
            if round_ % 2 == 0:
                raw_elapsed, elapsed = raw_side(round_), canopy_side(round_)
            else:
                elapsed, raw_elapsed = canopy_side(round_), raw_side(round_)
            totals.rounds.append({"canopy_per_s": n / elapsed, "raw_per_s": n / raw_elapsed})
            print(
                f"round {round_ + 1}: canopy {n / elapsed:.1f}/s ({elapsed:.1f} s), raw {n / raw_elapsed:.1f}/s"
                f" ({raw_elapsed:.1f} s), ratio {raw_elapsed / elapsed:.2f}"
            )
        plane.stop_workers()
        total: int = n * args.rounds
        for problem in problems[:10]:
            print(f"  {problem}")
        print(
            f"verified: {total} organizations and {total} raw customers, "
            + ("each invoiced once, paid, of our amount" if not problems else f"{len(problems)} PROBLEMS")
        )
        rate, raw_rate = total / totals.canopy, total / totals.raw

        def per_organization(seconds: float) -> float:
            return round(1000 * seconds / total, 1)

        canopy_cpu = totals.control_cpu + totals.database_cpu + totals.localstripe_canopy
        raw_cpu = totals.raw_client_cpu + totals.localstripe_raw
        figures = {
            "organizations": total,
            "workers": args.workers,
            "concurrency": CONCURRENCY,
            "canopy_per_s": round(rate, 2),
            "raw_per_s": round(raw_rate, 2),
            "ratio": round(rate / raw_rate, 3),
            "control_plane_cpu_ms_per_organization": per_organization(totals.control_cpu),
            "postgresql_cpu_ms_per_organization": per_organization(totals.database_cpu),
            "raw_client_cpu_ms_per_organization": per_organization(totals.raw_client_cpu),
            "localstripe_cpu_ms_per_organization": {
                "canopy": per_organization(totals.localstripe_canopy),
                "raw": per_organization(totals.localstripe_raw),
            },
            "cpu_ratio": round(raw_cpu / canopy_cpu, 3),
            "rounds": [{k: round(v, 2) for k, v in r.items()} for r in totals.rounds],
            "verified": not problems,
        }
        print(f"invoiced: {rate:.1f} organizations/s ({total} in {totals.canopy:.1f} s)")
        print(f"raw calls: {raw_rate:.1f} organizations/s ({total} in {totals.raw:.1f} s)")
        print(f"ratio: {rate / raw_rate:.2f} (target >= 0.5)")
        print(
            f"control-plane CPU: {per_organization(totals.control_cpu)} ms per organization (workers,"
            f" {totals.control_cpu:.1f} s in all), and {per_organization(totals.database_cpu)} ms in PostgreSQL"
        )
        print(
            f"localstripe CPU: {per_organization(totals.localstripe_canopy)} ms per invoiced organization,"
            f" {per_organization(totals.localstripe_raw)} ms per raw one"
        )
        print(
            f"CPU of every process per organization: canopy {per_organization(canopy_cpu)} ms, raw"
            f" {per_organization(raw_cpu)} ms (client {per_organization(totals.raw_client_cpu)} ms); ratio"
            f" {raw_cpu / canopy_cpu:.2f}"
        )
        if problems:
            raise SystemExit("verification failed")
        return figures
    finally:
        drop_database(plane, database)


# -- part 2 ---------------------------------------------------------------------------------------------------


def seat_collection(args: argparse.Namespace, server: LocalStripe, work: Path) -> dict[str, Any]:
    database = f"bench_seats_{os.getpid()}"
    plane: Plane | None = None
    try:
        plane = control_plane(database, work, {**FAST_ENV, **billing_env(server)})
        started = time.monotonic()
        ids = [plane.create_workspace(f"seats-{os.getpid()}-{i}") for i in range(args.servers)]
        start_workers(plane, args.workers)
        for workspace_id in ids:
            defer_reconcile(workspace_id, Cause.signup)
        deadline = started + 120 + 10 * args.servers
        for workspace_id in ids:
            plane.wait_state(workspace_id, Lifecycle.trialing, timeout=max(1.0, deadline - time.monotonic()))
        plane.stop_workers()
        root = str(plane.state_dir.resolve())
        servers = [pid for rd, pids in all_server_pids().items() if rd.startswith(root + os.sep) for pid in pids]
        print(
            f"seat collection: {args.servers} workspace servers up and trialing in {time.monotonic() - started:.1f} s"
        )
        with session_scope() as session:
            subscribed = session.scalar(select(func.count()).select_from(Subscription))
        if subscribed != args.servers:
            raise SystemExit(f"{subscribed} subscriptions for {args.servers} organizations")
        seats.collect(reason=SnapshotReason.billing_event)  # untimed: connections and imports
        elapsed = cpu = served = 0.0
        for _ in range(args.repetitions):
            served_before, cpu_before, started = cpu_seconds(servers), time.process_time(), time.perf_counter()
            outcome = seats.collect(reason=SnapshotReason.billing_event)
            elapsed += time.perf_counter() - started
            cpu += time.process_time() - cpu_before
            served += cpu_seconds(servers) - served_before
            if (outcome.recorded, outcome.failed) != (args.servers, 0):
                raise SystemExit(f"collection recorded {outcome.recorded}, failed {outcome.failed}")
        reads = args.servers * args.repetitions
        figures = {
            "servers": args.servers,
            "repetitions": args.repetitions,
            "servers_read_per_s": round(reads / elapsed, 1),
            "ms_per_collection": round(1000 * elapsed / args.repetitions, 1),
            "control_plane_cpu_ms_per_server": round(1000 * cpu / reads, 2),
            "workspace_server_cpu_ms_per_read": round(1000 * served / reads, 2),
        }
        print(
            f"seats: {figures['servers_read_per_s']} servers read/s ({args.repetitions} collections of"
            f" {args.servers} in {elapsed:.2f} s, {figures['ms_per_collection']} ms each)"
        )
        print(
            f"seats CPU: {figures['control_plane_cpu_ms_per_server']} ms per server read in the control plane,"
            f" {figures['workspace_server_cpu_ms_per_read']} ms in the workspace server"
        )
        return figures
    finally:
        drop_database(plane, database)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--organizations", type=int, default=1000, help="per round and side (default 1000)")
    parser.add_argument("--workers", type=int, default=2, help=f"worker processes of {CONCURRENCY} jobs (default 2)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of invoicing (default 1)")
    parser.add_argument("--servers", type=int, default=20, help="workspace servers read for seats (default 20)")
    parser.add_argument("--repetitions", type=int, default=5, help="timed seat collections (default 5)")
    parser.add_argument("--timeout", type=int, default=1200, help="bound of the whole run in seconds (default 1200)")
    parser.add_argument("--skip-seats", action="store_true", help="part 1 only")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress shows when piped

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM):
        signal.signal(signum, _stop)
    signal.alarm(args.timeout)
    work = Path(tempfile.mkdtemp(prefix="canopy-bench-billing-"))
    server = start_localstripe(work)
    results: dict[str, Any] = {}
    try:
        results["invoicing"] = invoicing(args, server, work)
        if not args.skip_seats:
            results["seat_collection"] = seat_collection(args, server, work)
        print(json.dumps(results))
    except Stop as stop:
        print(f"stopped by {stop} (--timeout {args.timeout}); logs: {work}", file=sys.stderr)
        return 1
    except BaseException:
        STOPPING.set()
        print(f"logs: {work}", file=sys.stderr)
        raise
    else:
        shutil.rmtree(work, ignore_errors=True)
    finally:
        signal.alarm(0)
        server.stop()
        close_sync_app()
        reset_engine()
    return 0


if __name__ == "__main__":
    sys.exit(main())
