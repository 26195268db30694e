"""The domain and application layer: CRM records, matching, recurrence, sync rules and jobs.

Nothing here imports the web framework or a provider library (enforced by services/ruff.toml).
"""
