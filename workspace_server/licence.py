"""What the workspace is licensed for, as clients read it: the client licence (``GET /api/v4/license/client``), the
server limits (``GET /api/v4/limits/server``: none imposed) and, once the control plane has set a billing plan
(:mod:`plan`), the cloud subscription, products and limits the web app loads for a Mattermost Cloud workspace
(``/api/v4/cloud/...``). An Enterprise workspace (a plan with a ``licence``) has a self-hosted Enterprise licence
instead, whose ``ExpiresAt`` the web app shows its expiry and grace banners from; it is not a cloud workspace.
Without a plan the workspace is unlicensed, as Mattermost Team Edition is."""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter
from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from workspace_server.auth import CurrentSession, OptionalSession
from workspace_server.db import Conn
from workspace_server.plan import Licence, stored_licence, stored_plan
from workspace_server.users import ACTIVATED_USERS
from workspace_server.web import AppError, JSONResponse, invalid_url_param

router = APIRouter(prefix="/api/v4")

# Mattermost's model.Invoice zero value: what its sanitized subscription shows non-admins as ``last_invoice``.
_NO_INVOICE: Final = {
    "id": "",
    "number": "",
    "create_at": 0,
    "total": 0,
    "tax": 0,
    "status": "",
    "description": "",
    "period_start": 0,
    "period_end": 0,
    "subscription_id": "",
    "line_items": None,
    "current_product_name": "",
}


# Mattermost's licensed features, as its client licence names them (``utils.GetClientLicense``): all off, since this
# server implements none of them (so the web app offers none of their settings nor calls their endpoints).
_FEATURES: Final = (
    "LDAP", "LDAPGroups", "MFA", "SAML", "Cluster", "Metrics", "GoogleOAuth", "Office365OAuth", "OpenId",
    "Compliance", "MHPNS", "Announcement", "Elasticsearch", "DataRetention", "IDLoadedPushNotifications",
    "EmailNotificationContents", "MessageExport", "CustomPermissionsSchemes", "GuestAccounts",
    "GuestAccountsPermissions", "CustomTermsOfService", "LockTeammateNameDisplay", "SharedChannels",
    "RemoteClusterService", "OutgoingOAuthConnections",
)  # fmt: skip
# What Mattermost leaves out of the licence for users without ``read_license_information`` (system admins have it):
# ``utils.GetSanitizedClientLicense``.
_ADMIN_ONLY: Final = ("Id", "Name", "Email", "IssuedAt", "StartsAt", "ExpiresAt", "SkuName")


def _flag(value: bool) -> str:
    """A boolean as Mattermost's string-valued licence and subscription fields carry it."""
    return "true" if value else "false"


def enterprise_licence(licence: Licence, licence_id: str, *, admin: bool) -> dict[str, str]:
    """An Enterprise plan's licence as Mattermost shows a self-hosted one: its SKU, ``Company``, ``Users`` (the seats
    purchased), its dates (ms; ``IssuedAt`` is its start), no feature of :data:`_FEATURES`; sanitized as Mattermost
    does for users who are not system admins."""
    shown = {
        "IsLicensed": "true",
        "Id": licence_id,
        "SkuName": licence.sku.capitalize(),
        "SkuShortName": licence.sku,
        "Users": str(licence.users),
        **dict.fromkeys(_FEATURES, "false"),
        "IssuedAt": str(licence.starts_at),
        "StartsAt": str(licence.starts_at),
        "ExpiresAt": str(licence.expires_at),
        "Name": "",
        "Email": "",
        "Company": licence.company,
        "Cloud": "false",
        "IsTrial": "false",
        "IsGovSku": "false",
    }
    return shown if admin else {key: value for key, value in shown.items() if key not in _ADMIN_ONLY}


def client_licence(plan: RowMapping | None, *, admin: bool) -> dict[str, str]:
    """The licence as Mattermost shows it to clients (string values). Without a plan: unlicensed. With an
    Enterprise licence: :func:`enterprise_licence`. With another plan: a cloud licence (``Cloud``, which makes the
    web app load the cloud subscription and show its billing banners), a trial while the plan is trialing
    (``IsTrial``), and for system admins its end (``ExpiresAt``, ms; Mattermost leaves it out of the licence it
    shows other users)."""
    if plan is None:
        return {"IsLicensed": "false"}
    enterprise = stored_licence(plan)
    if enterprise is not None:
        return enterprise_licence(enterprise, plan["subscription_id"], admin=admin)
    trialing = plan["state"] == "trialing"
    licence = {"IsLicensed": "true", "Cloud": "true", "IsTrial": _flag(trialing)}
    if admin and trialing:
        licence["ExpiresAt"] = str(plan["trial_end_at"])
    return licence


@router.get("/license/client")
async def get_client_licence(conn: Conn, session: OptionalSession, format: str = "") -> JSONResponse:
    """The client licence in the ``old`` format (the only one Mattermost serves); no session needed."""
    if not format:
        raise AppError(
            400,
            "api.license.client.old_format.app_error",
            "New format for the client license is not supported yet. Please specify format=old in the query string.",
        )
    if format != "old":
        raise invalid_url_param("format")
    admin = session is not None and session.is_system_admin
    return JSONResponse(client_licence(await stored_plan(conn), admin=admin))


@router.get("/limits/server")
async def get_server_limits(conn: Conn, session: CurrentSession) -> JSONResponse:
    """Mattermost's ``ServerLimits``: no user or history limit (0); the active user count for system admins
    only, as Mattermost shows it."""
    active = int(await conn.scalar(ACTIVATED_USERS) or 0) if session.is_system_admin else 0
    return JSONResponse(
        {
            "activeUserCount": active,
            "maxUsersLimit": 0,
            "maxUsersHardLimit": 0,
            "lastAccessiblePostTime": 0,
            "postHistoryLimit": 0,
            "singleChannelGuestCount": 0,
            "singleChannelGuestLimit": 0,
        }
    )


async def _cloud_plan(conn: AsyncConnection) -> RowMapping:
    """The plan, for a cloud route: Mattermost's 403 for a server whose licence is not a cloud one when there is
    none, or when it is an Enterprise licence."""
    plan = await stored_plan(conn)
    if plan is None or stored_licence(plan) is not None:
        raise AppError(403, "api.cloud.license_error", "Your license does not support cloud requests.")
    return plan


@router.get("/cloud/subscription")
async def get_cloud_subscription(conn: Conn, session: CurrentSession) -> JSONResponse:
    """Mattermost's ``Subscription`` for the plan: ``status`` (the plan's state), ``is_free_trial``,
    ``trial_end_at`` (ms) and ``delinquent_since`` (Unix seconds, as Mattermost's web app reads it; null when not
    delinquent), ``seats`` (activated users). Users who are not system admins get what Mattermost shows them: no
    status, seats or invoice."""
    plan = await _cloud_plan(conn)
    trialing = plan["state"] == "trialing"
    delinquent_ms: int = plan["delinquent_since"]
    subscription: dict[str, Any] = {
        "id": plan["subscription_id"],
        "customer_id": "",
        "product_id": "",
        "add_ons": [],
        "start_at": 0,
        "end_at": plan["trial_end_at"] if trialing else 0,
        "create_at": 0,
        "seats": 0,
        "status": "",
        "dns": "",
        "last_invoice": _NO_INVOICE,
        "upcoming_invoice": None,
        "is_free_trial": _flag(trialing),
        "trial_end_at": plan["trial_end_at"],
        "delinquent_since": delinquent_ms // 1000 if delinquent_ms else None,
        "originally_licensed_seats": 0,
        "compliance_blocked": "",
        "billing_type": "",
        "cancel_at": None,
        "will_renew": "",
    }
    if session.is_system_admin:
        seats = int(await conn.scalar(ACTIVATED_USERS) or 0)
        subscription |= {"seats": seats, "status": plan["state"], "last_invoice": None}
    return JSONResponse(subscription)


@router.get("/cloud/products")
async def get_cloud_products(conn: Conn, session: CurrentSession) -> JSONResponse:
    """The products the web app offers to buy: none here (plans and prices are Canopy's, at the plan's
    ``billing_url``)."""
    await _cloud_plan(conn)
    return JSONResponse([])


@router.get("/cloud/limits")
async def get_cloud_limits(conn: Conn, session: CurrentSession) -> JSONResponse:
    """Mattermost's ``ProductLimits``: none (an empty object, as Mattermost answers for a paid plan)."""
    await _cloud_plan(conn)
    return JSONResponse({})
