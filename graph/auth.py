"""App-only access tokens for Microsoft Graph: msal's client-credentials flow, cached.

https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow
"""

from __future__ import annotations

import logging
import threading
from urllib.parse import urlparse

import msal
import requests
from msal.exceptions import MsalServiceError

log = logging.getLogger(__name__)

# Authorities msal knows; any other host (sovereign clouds aside, a test stand-in) must be used
# without instance discovery, or msal asks login.microsoftonline.com about it.
_PUBLIC_AUTHORITY_HOSTS = frozenset({"login.microsoftonline.com"})
_TIMEOUT_SECONDS = 10


class GraphAuthError(Exception):
    """No token: `reason` is a dotted code for logs and metrics, the message says why in words."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class AppTokenProvider:
    """Hands out app-only Graph tokens; msal keeps them cached until shortly before expiry.

    One instance per process: its msal application and token cache are shared by all threads.
    The msal application is built on first use, so a slow or absent Entra does not stop start-up.
    """

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        authority_host: str,
        graph_base_url: str,
    ) -> None:
        self._tenant_id = tenant_id
        self._client_id = client_id
        self._client_secret = client_secret
        self._authority_host = authority_host.rstrip("/")
        graph = urlparse(graph_base_url)
        self.scope = f"{graph.scheme}://{graph.netloc}/.default"
        self._app: msal.ConfidentialClientApplication | None = None
        self._lock = threading.Lock()

    def _application(self) -> msal.ConfidentialClientApplication:
        with self._lock:
            if self._app is None:
                public = urlparse(self._authority_host).hostname in _PUBLIC_AUTHORITY_HOSTS
                self._app = msal.ConfidentialClientApplication(
                    self._client_id,
                    client_credential=self._client_secret,
                    authority=f"{self._authority_host}/{self._tenant_id}",
                    instance_discovery=None if public else False,
                    timeout=_TIMEOUT_SECONDS,
                )
            return self._app

    def token(self) -> str:
        """A valid access token for Graph, from msal's cache when it has one."""
        try:
            result = self._application().acquire_token_for_client(scopes=[self.scope])
        except MsalServiceError as failure:
            # msal raises for HTTP errors it cannot parse as an OAuth error (a 503, say).
            raise GraphAuthError(
                f"Entra is unavailable: {failure}", reason="entra.unavailable"
            ) from None
        except (requests.RequestException, ValueError) as failure:
            # msal raises ValueError when the authority's metadata cannot be read.
            self._app = None  # rebuild next time: discovery may have failed half-way
            raise GraphAuthError(
                f"Entra could not be reached: {type(failure).__name__}", reason="entra.unreachable"
            ) from None
        token = result.get("access_token")
        if token:
            return str(token)
        code = str(result.get("error", "unknown"))
        # Entra's descriptions name the app and the tenant, never the secret; keep the first line.
        description = str(result.get("error_description", "")).splitlines()
        log.warning("graph.auth.token_refused error=%s", code)
        raise GraphAuthError(
            f"Entra refused the token request: {description[0] if description else code}",
            reason=f"entra.{code}",
        )
