"""Outgoing mail behind one interface: SMTP, or a local outbox in dev mode."""
