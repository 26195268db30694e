"""Microsoft Graph adapter: msal app-only and on-behalf-of tokens, subscriptions, event sync."""
