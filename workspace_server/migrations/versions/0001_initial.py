"""Initial schema: users, sessions, teams, channels, memberships, posts.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _id(name: str = "id", *args: object, **kwargs: object) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.String(26), *args, **kwargs)  # type: ignore[arg-type]


def _millis(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.BigInteger, nullable=False, server_default="0")


def _text(name: str, length: int, default: str = "") -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.String(length), nullable=False, server_default=default)


def _flag(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.Boolean, nullable=False, server_default="false")


def _json(name: str, default: str = "{}") -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, JSONB, nullable=False, server_default=default)


def _count(name: str, kind: type[sa.Integer] = sa.BigInteger) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, kind, nullable=False, server_default="0")


def upgrade() -> None:
    op.create_table(
        "users",
        _id(primary_key=True),
        _millis("create_at"),
        _millis("update_at"),
        _millis("delete_at"),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("email", sa.String(128), nullable=False, unique=True),
        _flag("email_verified"),
        _text("password", 256),
        _text("nickname", 64),
        _text("first_name", 64),
        _text("last_name", 64),
        _text("position", 128),
        _text("roles", 256, "system_user"),
        _text("locale", 5, "en"),
        _json("timezone"),
        _json("props"),
        _json("notify_props"),
        _millis("last_password_update"),
        _millis("last_picture_update"),
        _flag("is_bot"),
    )
    op.create_table(
        "sessions",
        _id(primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        _id("user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("csrf_token", sa.String(26), nullable=False),
        _millis("create_at"),
        _millis("expires_at"),
    )
    op.create_table(
        "teams",
        _id(primary_key=True),
        _millis("create_at"),
        _millis("update_at"),
        _millis("delete_at"),
        sa.Column("display_name", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        _text("description", 255),
        _text("email", 128),
        _text("type", 1, "O"),
        _text("company_name", 64),
        sa.Column("allowed_domains", sa.Text, nullable=False, server_default=""),
        _id("invite_id", nullable=False),
        _flag("allow_open_invite"),
    )
    op.create_table(
        "team_members",
        _id("team_id", sa.ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
        _id("user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True),
        _text("explicit_roles", 256),
        _flag("scheme_admin"),
        _millis("create_at"),
        _millis("delete_at"),
    )
    op.create_table(
        "channels",
        _id(primary_key=True),
        _millis("create_at"),
        _millis("update_at"),
        _millis("delete_at"),
        _id("team_id", sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
        sa.Column("type", sa.String(1), nullable=False),
        sa.Column("display_name", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        _text("header", 1024),
        _text("purpose", 250),
        _millis("last_post_at"),
        _millis("last_root_post_at"),
        _count("total_msg_count"),
        _count("total_msg_count_root"),
        _text("creator_id", 26),
        sa.UniqueConstraint("team_id", "name", name="uq_channels_team_id_name"),
    )
    op.create_table(
        "channel_members",
        _id("channel_id", sa.ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True),
        _id("user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True),
        _text("explicit_roles", 256),
        _flag("scheme_admin"),
        _millis("last_viewed_at"),
        _count("msg_count"),
        _count("msg_count_root"),
        _count("mention_count", sa.Integer),
        _count("mention_count_root", sa.Integer),
        _json("notify_props"),
        _millis("last_update_at"),
    )
    op.create_table(
        "posts",
        _id(primary_key=True),
        _millis("create_at"),
        _millis("update_at"),
        _millis("edit_at"),
        _millis("delete_at"),
        _flag("is_pinned"),
        _id("user_id", nullable=False),
        _id("channel_id", sa.ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
        _text("root_id", 26),
        _text("original_id", 26),
        sa.Column("message", sa.Text, nullable=False, server_default=""),
        _text("type", 26),
        _json("props"),
        _text("hashtags", 1000),
        _json("file_ids", "[]"),
        _count("reply_count"),
        _millis("last_reply_at"),
    )
    op.create_index("ix_posts_channel_id_create_at", "posts", ["channel_id", "create_at"])
    op.create_index("ix_posts_root_id", "posts", ["root_id"], postgresql_where=sa.text("root_id <> ''"))


def downgrade() -> None:
    for table in ("posts", "channel_members", "channels", "team_members", "teams", "sessions", "users"):
        op.drop_table(table)
