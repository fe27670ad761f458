"""Accounts: people who use the control plane, their memberships, sessions and email verification."""
