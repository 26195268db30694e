"""Deployment descriptors: the Outlook XML manifest and the Workspace add-on descriptor."""
