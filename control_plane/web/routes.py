"""All web pages as one router: signup, verification, sign-in and the workspaces list (with deletion), invitations,
progress, billing, the workspace data page, the operators' data page, the operator console's releases and rollouts
pages, the sales console, dev mailbox, static files.

Pages authenticate with the ``canopy_session`` cookie (opened by the verification link or by
signing in). Without a session the workspace pages send the browser to sign in; another
organization's workspace (or one that does not exist) is a 404, so nothing leaks.
"""

from __future__ import annotations

from fastapi import APIRouter

from control_plane.web import (
    billing_page,
    data_page,
    deletion_pages,
    dev_mail,
    invitations,
    operations_page,
    progress_pages,
    releases_pages,
    rollouts_pages,
    sales_pages,
    signin,
    signup,
    static,
    verification,
)

router = APIRouter(include_in_schema=False)
for module in (
    signup,
    verification,
    signin,
    deletion_pages,
    invitations,
    progress_pages,
    billing_page,
    data_page,
    operations_page,
    releases_pages,
    rollouts_pages,
    sales_pages,
    dev_mail,
    static,
):
    router.include_router(module.router)
