"""Signup and verification bodies."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, EmailStr, Field

from control_plane.workspaces.schemas import WorkspaceOut

MIN_PASSWORD = 10
MAX_PASSWORD = 200


class SignupRequest(BaseModel):
    """Self-serve signup: an email, a workspace address and a password."""

    email: EmailStr
    workspace: str = Field(min_length=1, max_length=100, description="Workspace address, e.g. `acme`.")
    password: str = Field(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD)
    display_name: str | None = Field(default=None, max_length=200)


class SignupAccepted(BaseModel):
    """Signup recorded; the workspace waits for the email to be confirmed.

    The answer is the same whether the email was new or already had an account (whose holder gets
    a mail about the attempt instead), so it carries no ids: they come with the verification.
    """

    email: str = Field(description="Where the mail went (normalized).")
    workspace: str = Field(description="The workspace address (normalized).")
    next_step: str = "Follow the link in the mail we sent you"


class VerifyRequest(BaseModel):
    """The token from the verification link."""

    token: str = Field(min_length=10, max_length=200)


class Verified(BaseModel):
    """Email confirmed; these workspaces are now provisioning."""

    account_id: uuid.UUID
    workspaces: list[WorkspaceOut]
