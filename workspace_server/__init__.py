"""Canopy workspace server: a messaging server whose REST v4 API is wire-compatible with Mattermost's."""
