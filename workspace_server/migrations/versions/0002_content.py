"""Content: direct/group channels without a team, reactions, files, incoming webhooks, bots, personal access
tokens, and full-text search on posts.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import TSVECTOR

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _id(name: str = "id", *args: object, **kwargs: object) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.String(26), *args, **kwargs)  # type: ignore[arg-type]


def _millis(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.BigInteger, nullable=False, server_default="0")


def _text(name: str, length: int, default: str = "") -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.String(length), nullable=False, server_default=default)


def _flag(name: str, default: str = "false") -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.Boolean, nullable=False, server_default=default)


def upgrade() -> None:
    # Direct and group message channels belong to no team; their names are unique on their own.
    op.alter_column("channels", "team_id", existing_type=sa.String(26), nullable=True)
    op.create_index(
        "uq_channels_name_without_team",
        "channels",
        ["name"],
        unique=True,
        postgresql_where=sa.text("team_id IS NULL"),
    )

    op.add_column("posts", _flag("has_reactions"))
    op.add_column(
        "posts",
        sa.Column("message_tsv", TSVECTOR, sa.Computed("to_tsvector('english'::regconfig, message)", persisted=True)),
    )
    op.create_index("ix_posts_message_tsv", "posts", ["message_tsv"], postgresql_using="gin")
    op.create_index("ix_posts_channel_id_update_at", "posts", ["channel_id", "update_at"])

    op.create_table(
        "reactions",
        _id("post_id", sa.ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True),
        _id("user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("emoji_name", sa.String(64), primary_key=True),
        _id("channel_id", nullable=False),
        _millis("create_at"),
        _millis("update_at"),
    )
    op.create_table(
        "file_infos",
        _id(primary_key=True),
        _id("user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        _id("channel_id", sa.ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
        _text("post_id", 26),
        _millis("create_at"),
        _millis("update_at"),
        _millis("delete_at"),
        sa.Column("name", sa.String(256), nullable=False),
        _text("extension", 64),
        sa.Column("size", sa.BigInteger, nullable=False),
        _text("mime_type", 256),
        sa.Column("width", sa.Integer, nullable=False, server_default="0"),
        sa.Column("height", sa.Integer, nullable=False, server_default="0"),
        _flag("has_preview_image"),
        sa.Column("path", sa.String(512), nullable=False),
        _text("thumbnail_path", 512),
        _text("preview_path", 512),
        sa.Column("stored_bytes", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_index("ix_file_infos_post_id", "file_infos", ["post_id"], postgresql_where=sa.text("post_id <> ''"))
    op.create_table(
        "incoming_webhooks",
        _id(primary_key=True),
        _millis("create_at"),
        _millis("update_at"),
        _millis("delete_at"),
        _id("user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        _id("channel_id", sa.ForeignKey("channels.id", ondelete="CASCADE"), nullable=False, index=True),
        _id("team_id", sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
        _text("display_name", 64),
        _text("description", 500),
        _text("username", 255),
        _text("icon_url", 1024),
        _flag("channel_locked"),
    )
    op.create_table(
        "bots",
        _id("user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        _text("display_name", 64),
        _text("description", 1024),
        _id("owner_id", nullable=False),
        _millis("create_at"),
        _millis("update_at"),
        _millis("delete_at"),
    )
    op.create_table(
        "user_access_tokens",
        _id(primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        _id("user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
        _text("description", 512),
        _flag("is_active", "true"),
        _millis("create_at"),
    )


def downgrade() -> None:
    for table in ("user_access_tokens", "bots", "incoming_webhooks", "file_infos", "reactions"):
        op.drop_table(table)
    op.drop_index("ix_posts_channel_id_update_at", "posts")
    op.drop_index("ix_posts_message_tsv", "posts")
    op.drop_column("posts", "message_tsv")
    op.drop_column("posts", "has_reactions")
    op.drop_index("uq_channels_name_without_team", "channels")
    op.execute("DELETE FROM channels WHERE team_id IS NULL")
    op.alter_column("channels", "team_id", existing_type=sa.String(26), nullable=False)
