"""Inbound provider notifications: verify, record durably, enqueue, acknowledge fast."""
