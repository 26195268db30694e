"""Stand-ins for Microsoft's services, served over real HTTP on 127.0.0.1 (see README.md).

``microsoft_standins(tmp_dir)`` starts the Entra stand-in (HTTPS, a throw-away CA) and the
Graph stand-in together and says which settings point the product at them::

    with microsoft_standins(tmp_path) as ms:
        ms.entra.register_app(client_id, secret)
        for name, value in ms.environment().items():
            monkeypatch.setenv(name, value)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tests.standins.entra import Entra
from tests.standins.google import Google
from tests.standins.graph import Graph
from tests.standins.server import BackgroundServer
from tests.standins.tls import DEFAULT_HOSTS, LocalCA, make_ca

__all__ = [
    "BackgroundServer",
    "Entra",
    "Google",
    "GoogleStandIns",
    "Graph",
    "LocalCA",
    "MicrosoftStandIns",
    "google_standins",
    "make_ca",
    "microsoft_standins",
]


@dataclass(frozen=True)
class MicrosoftStandIns:
    ca: LocalCA
    entra: Entra
    graph: Graph

    def environment(self) -> dict[str, str]:
        """The settings that point the product at the stand-ins.

        ``REQUESTS_CA_BUNDLE`` must be set (not only ``verify=`` on a requests Session or
        msal's ``verify=``): requests lets that variable override a session's ``verify``.
        """
        ca = str(self.ca.ca_path)
        return {
            "MS_TENANT_ID": self.entra.tenant_id,
            "MS_AUTHORITY_HOST": self.entra.base_url,
            "GRAPH_BASE_URL": self.graph.root_url,
            "REQUESTS_CA_BUNDLE": ca,
            "SSL_CERT_FILE": ca,
            "CURL_CA_BUNDLE": ca,
        }


@contextmanager
def microsoft_standins(
    directory: Path,
    *,
    graph_https: bool = False,
    issuer_mode: Literal["microsoft", "self"] = "microsoft",
    extra_hosts: tuple[str, ...] = (),
) -> Iterator[MicrosoftStandIns]:
    """Start Entra (HTTPS) and Graph (HTTP, or HTTPS with ``graph_https``); stop them after.

    ``extra_hosts`` adds names to the server certificate, for a product served over HTTPS
    under a public name (``crm.test``) that ``graph.route`` maps to loopback.
    """
    ca = make_ca(directory, (*DEFAULT_HOSTS, *extra_hosts))
    with (
        Entra(ca, issuer_mode=issuer_mode) as entra,
        Graph(entra, ca=ca if graph_https else None, verify=str(ca.ca_path)) as graph,
    ):
        yield MicrosoftStandIns(ca, entra, graph)


@dataclass(frozen=True)
class GoogleStandIns:
    """The Google stand-in (token endpoint, Calendar, Gmail, Directory) and its CA."""

    ca: LocalCA
    google: Google

    def environment(self) -> dict[str, str]:
        """``GOOGLE_CALENDAR_BASE_URL``, ``GOOGLE_GMAIL_BASE_URL``,
        ``GOOGLE_DIRECTORY_BASE_URL`` and the CA variables (plus
        ``GOOGLE_SERVICE_ACCOUNT_FILE`` once ``write_service_account_file`` wrote one)."""
        return self.google.environment()


@contextmanager
def google_standins(
    directory: Path,
    *,
    extra_hosts: tuple[str, ...] = (),
    ca: LocalCA | None = None,
) -> Iterator[GoogleStandIns]:
    """Start the Google stand-in over HTTPS; stop it after.

    ``extra_hosts`` adds names to the server certificate (as for ``microsoft_standins``).
    ``ca=ms.ca`` reuses the Microsoft stand-ins' CA, so one ``REQUESTS_CA_BUNDLE`` trusts
    both (``make_ca`` writes fixed file names: two bundles must not share ``directory``).
    """
    local_ca = ca or make_ca(directory, (*DEFAULT_HOSTS, *extra_hosts))
    with Google(local_ca) as google:
        yield GoogleStandIns(local_ca, google)
