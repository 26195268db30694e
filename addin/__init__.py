"""HTTP adapters for the add-ins: the CRM JSON API the task pane and cards call, and auth."""
