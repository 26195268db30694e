"""Folding names and classifying e-mail domains."""

from __future__ import annotations

import pytest

from services.text import (
    email_domain,
    fold,
    is_free_mail,
    is_valid_domain,
    is_valid_email,
    normalize_domain,
)


@pytest.mark.parametrize(
    ("raw", "folded"),
    [
        ("Café Ærø  Bryggeri", "cafe aero bryggeri"),
        ("STRAßE & Söhne GmbH", "strasse sohne gmbh"),
        ("Łódź Œuvre", "lodz oeuvre"),
        ("  O'Neil_and-Co. ", "o neil and co"),
        ("", ""),
    ],
)
def test_fold(raw: str, folded: str) -> None:
    assert fold(raw) == folded


def test_domains_and_emails() -> None:
    assert normalize_domain(" WWW.Contoso.COM. ") == "contoso.com"
    assert is_valid_domain("sub.contoso.co.uk")
    assert not is_valid_domain("contoso")
    assert not is_valid_domain("bad domain.com")
    assert is_valid_email("Anna.K+crm@Contoso.com")
    assert not is_valid_email("anna@contoso")
    assert email_domain("Anna@Contoso.COM") == "contoso.com"
    assert is_free_mail("GMAIL.com")
    assert is_free_mail("outlook.com")
    assert not is_free_mail("contoso.com")
