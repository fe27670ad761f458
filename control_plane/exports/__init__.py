"""Workspace exports: Mattermost bulk-export archives of a workspace, made in the background, downloaded through
signed, expiring links."""
