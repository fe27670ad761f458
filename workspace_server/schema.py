"""Table definitions (SQLAlchemy Core); the migrations under ``migrations/`` create the same tables."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR

metadata = MetaData()


def _id(name: str = "id", *args: Any, **kwargs: Any) -> Column[str]:
    """A 26-character id column."""
    return Column(name, String(26), *args, **kwargs)


def _millis(name: str) -> Column[int]:
    """A non-null millisecond timestamp column, 0 when unset."""
    return Column(name, BigInteger, nullable=False, server_default="0")


users = Table(
    "users",
    metadata,
    _id(primary_key=True),
    _millis("create_at"),
    _millis("update_at"),
    _millis("delete_at"),
    Column("username", String(64), nullable=False, unique=True),
    Column("email", String(128), nullable=False, unique=True),
    Column("email_verified", Boolean, nullable=False, server_default="false"),
    Column("password", String(256), nullable=False, server_default=""),
    Column("nickname", String(64), nullable=False, server_default=""),
    Column("first_name", String(64), nullable=False, server_default=""),
    Column("last_name", String(64), nullable=False, server_default=""),
    Column("position", String(128), nullable=False, server_default=""),
    Column("roles", String(256), nullable=False, server_default="system_user"),
    Column("locale", String(5), nullable=False, server_default="en"),
    Column("timezone", JSONB, nullable=False, server_default="{}"),
    Column("props", JSONB, nullable=False, server_default="{}"),
    Column("notify_props", JSONB, nullable=False, server_default="{}"),
    _millis("last_password_update"),
    _millis("last_picture_update"),
    Column("is_bot", Boolean, nullable=False, server_default="false"),
)

sessions = Table(
    "sessions",
    metadata,
    _id(primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    _id("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("csrf_token", String(26), nullable=False),
    _millis("create_at"),
    _millis("expires_at"),
    # Set for the session that stands for a personal access token: it lives and dies with the token.
    _id("access_token_id", ForeignKey("user_access_tokens.id", ondelete="CASCADE"), nullable=True, index=True),
)

teams = Table(
    "teams",
    metadata,
    _id(primary_key=True),
    _millis("create_at"),
    _millis("update_at"),
    _millis("delete_at"),
    Column("display_name", String(64), nullable=False),
    Column("name", String(64), nullable=False, unique=True),
    Column("description", String(255), nullable=False, server_default=""),
    Column("email", String(128), nullable=False, server_default=""),
    Column("type", String(1), nullable=False, server_default="O"),
    Column("company_name", String(64), nullable=False, server_default=""),
    Column("allowed_domains", Text, nullable=False, server_default=""),
    _id("invite_id", nullable=False),
    Column("allow_open_invite", Boolean, nullable=False, server_default="false"),
)

team_members = Table(
    "team_members",
    metadata,
    _id("team_id", ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
    _id("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True),
    Column("explicit_roles", String(256), nullable=False, server_default=""),
    Column("scheme_admin", Boolean, nullable=False, server_default="false"),
    _millis("create_at"),
    _millis("delete_at"),
)

channels = Table(
    "channels",
    metadata,
    _id(primary_key=True),
    _millis("create_at"),
    _millis("update_at"),
    _millis("delete_at"),
    # NULL for direct and group message channels, which belong to no team.
    _id("team_id", ForeignKey("teams.id", ondelete="CASCADE"), nullable=True),
    Column("type", String(1), nullable=False),
    Column("display_name", String(64), nullable=False),
    Column("name", String(64), nullable=False),
    Column("header", String(1024), nullable=False, server_default=""),
    Column("purpose", String(250), nullable=False, server_default=""),
    _millis("last_post_at"),
    _millis("last_root_post_at"),
    Column("total_msg_count", BigInteger, nullable=False, server_default="0"),
    Column("total_msg_count_root", BigInteger, nullable=False, server_default="0"),
    Column("creator_id", String(26), nullable=False, server_default=""),
    UniqueConstraint("team_id", "name", name="uq_channels_team_id_name"),
    Index("uq_channels_name_without_team", "name", unique=True, postgresql_where=text("team_id IS NULL")),
)

channel_members = Table(
    "channel_members",
    metadata,
    _id("channel_id", ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True),
    _id("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True),
    Column("explicit_roles", String(256), nullable=False, server_default=""),
    Column("scheme_admin", Boolean, nullable=False, server_default="false"),
    _millis("last_viewed_at"),
    Column("msg_count", BigInteger, nullable=False, server_default="0"),
    Column("msg_count_root", BigInteger, nullable=False, server_default="0"),
    Column("mention_count", Integer, nullable=False, server_default="0"),
    Column("mention_count_root", Integer, nullable=False, server_default="0"),
    Column("notify_props", JSONB, nullable=False, server_default="{}"),
    _millis("last_update_at"),
)

posts = Table(
    "posts",
    metadata,
    _id(primary_key=True),
    _millis("create_at"),
    _millis("update_at"),
    _millis("edit_at"),
    _millis("delete_at"),
    Column("is_pinned", Boolean, nullable=False, server_default="false"),
    _id("user_id", nullable=False),
    _id("channel_id", ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    Column("root_id", String(26), nullable=False, server_default=""),
    Column("original_id", String(26), nullable=False, server_default=""),
    Column("message", Text, nullable=False, server_default=""),
    Column("type", String(26), nullable=False, server_default=""),
    Column("props", JSONB, nullable=False, server_default="{}"),
    Column("hashtags", String(1000), nullable=False, server_default=""),
    Column("file_ids", JSONB, nullable=False, server_default="[]"),
    Column("reply_count", BigInteger, nullable=False, server_default="0"),
    _millis("last_reply_at"),
    Column("has_reactions", Boolean, nullable=False, server_default="false"),
    # Full-text search: the message's lexemes, kept by PostgreSQL itself.
    Column("message_tsv", TSVECTOR, Computed("to_tsvector('english'::regconfig, message)", persisted=True)),
    Index("ix_posts_channel_id_create_at", "channel_id", "create_at"),
    Index("ix_posts_channel_id_update_at", "channel_id", "update_at"),
    Index("ix_posts_root_id", "root_id", postgresql_where=text("root_id <> ''")),
    Index("ix_posts_message_tsv", "message_tsv", postgresql_using="gin"),
    Index("ix_posts_create_at_id", "create_at", "id"),
    Index("ix_posts_user_id_create_at", "user_id", "create_at"),
)

reactions = Table(
    "reactions",
    metadata,
    _id("post_id", ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True),
    _id("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("emoji_name", String(64), primary_key=True),
    _id("channel_id", nullable=False),
    _millis("create_at"),
    _millis("update_at"),
)

file_infos = Table(
    "file_infos",
    metadata,
    _id(primary_key=True),
    _id("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    _id("channel_id", ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    Column("post_id", String(26), nullable=False, server_default=""),
    _millis("create_at"),
    _millis("update_at"),
    _millis("delete_at"),
    Column("name", String(256), nullable=False),
    Column("extension", String(64), nullable=False, server_default=""),
    Column("size", BigInteger, nullable=False),
    Column("mime_type", String(256), nullable=False, server_default=""),
    Column("width", Integer, nullable=False, server_default="0"),
    Column("height", Integer, nullable=False, server_default="0"),
    Column("has_preview_image", Boolean, nullable=False, server_default="false"),
    # Object keys in the storage backend; the thumbnail and preview keys are empty for non-images.
    Column("path", String(512), nullable=False),
    Column("thumbnail_path", String(512), nullable=False, server_default=""),
    Column("preview_path", String(512), nullable=False, server_default=""),
    # Bytes stored for this file: the original plus its thumbnail and preview.
    Column("stored_bytes", BigInteger, nullable=False, server_default="0"),
    Index("ix_file_infos_post_id", "post_id", postgresql_where=text("post_id <> ''")),
)

incoming_webhooks = Table(
    "incoming_webhooks",
    metadata,
    _id(primary_key=True),
    _millis("create_at"),
    _millis("update_at"),
    _millis("delete_at"),
    _id("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    _id("channel_id", ForeignKey("channels.id", ondelete="CASCADE"), nullable=False, index=True),
    _id("team_id", ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    Column("display_name", String(64), nullable=False, server_default=""),
    Column("description", String(500), nullable=False, server_default=""),
    Column("username", String(255), nullable=False, server_default=""),
    Column("icon_url", String(1024), nullable=False, server_default=""),
    Column("channel_locked", Boolean, nullable=False, server_default="false"),
)

bots = Table(
    "bots",
    metadata,
    _id("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("display_name", String(64), nullable=False, server_default=""),
    Column("description", String(1024), nullable=False, server_default=""),
    _id("owner_id", nullable=False),
    _millis("create_at"),
    _millis("update_at"),
    _millis("delete_at"),
)

user_access_tokens = Table(
    "user_access_tokens",
    metadata,
    _id(primary_key=True),
    # The same hash as its session's, kept so that a disabled token can be enabled again.
    Column("token_hash", String(64), nullable=False, unique=True),
    _id("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("description", String(512), nullable=False, server_default=""),
    Column("is_active", Boolean, nullable=False, server_default="true"),
    _millis("create_at"),
)

preferences = Table(
    "preferences",
    metadata,
    _id("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("category", String(32), primary_key=True),
    Column("name", String(32), primary_key=True),
    Column("value", Text, nullable=False, server_default=""),
)

statuses = Table(
    "statuses",
    metadata,
    _id("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("status", String(32), nullable=False),
    # Set by the user (PUT /users/{id}/status): connecting and disconnecting no longer change it.
    Column("manual", Boolean, nullable=False, server_default="false"),
    _millis("last_activity_at"),
    # Unix seconds at which a timed "dnd" ends (0: until changed), and the status it then returns to.
    Column("dnd_end_time", BigInteger, nullable=False, server_default="0"),
    Column("prev_status", String(32), nullable=False, server_default=""),
)

workspace_plan = Table(
    "workspace_plan",
    metadata,
    # Always true: the primary key lets the table hold one row only (see plan.py).
    Column("id", Boolean, primary_key=True, server_default=text("true")),
    # Mattermost's Subscription.id, made when the control plane first sets the plan.
    _id("subscription_id", nullable=False),
    Column("state", String(16), nullable=False),
    _millis("trial_end_at"),
    _millis("delinquent_since"),
    Column("billing_url", String(2048), nullable=False, server_default=""),
    # An Enterprise workspace's licence (plan.Licence): all set, or all NULL (no licence).
    Column("licence_sku", String(16)),
    Column("licence_company", String(256)),
    Column("licence_users", Integer),
    Column("licence_starts_at", BigInteger),
    Column("licence_expires_at", BigInteger),
    Column("licence_grace_ends_at", BigInteger),
    Column("licence_read_only", Boolean),
    CheckConstraint("id", name="ck_workspace_plan_one_row"),
    CheckConstraint("state IN ('trialing', 'active', 'past_due', 'suspended')", name="ck_workspace_plan_state"),
    CheckConstraint(
        "num_nulls(licence_sku, licence_company, licence_users, licence_starts_at, licence_expires_at,"
        " licence_grace_ends_at, licence_read_only) IN (0, 7)",
        name="ck_workspace_plan_licence",
    ),
)

canopy_activity = Table(
    "canopy_activity",
    metadata,
    # Always true: one row (see activity.py).
    Column("id", Boolean, primary_key=True, server_default=text("true")),
    # The workspace's last use, in ms, as its server processes last wrote it.
    _millis("last_request_at"),
    CheckConstraint("id", name="ck_canopy_activity_one_row"),
)
