"""Normalising names, e-mail addresses and domains the same way everywhere."""

from __future__ import annotations

import re
import unicodedata

# Consumer mail domains: an attendee from one of these says nothing about their company.
FREE_MAIL_DOMAINS = frozenset(
    {
        "aol.com", "gmail.com", "googlemail.com", "gmx.com", "gmx.de", "gmx.net", "hey.com",
        "hotmail.co.uk", "hotmail.com", "hotmail.de", "hotmail.fr", "icloud.com", "live.com",
        "mac.com", "mail.com", "me.com", "msn.com", "outlook.com", "outlook.de", "proton.me",
        "protonmail.com", "qq.com", "t-online.de", "web.de", "yahoo.co.uk", "yahoo.com",
        "yahoo.de", "yahoo.fr", "yandex.com", "yandex.ru", "zoho.com", "online.no", "live.no",
        "hotmail.no", "libero.it", "orange.fr", "free.fr", "laposte.net", "163.com", "126.com",
    }
)  # fmt: skip

_EMAIL = re.compile(r"^[^@\s]+@([A-Za-z0-9-]+\.)+[A-Za-z]{2,}$")
_DOMAIN = re.compile(r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_NON_WORD = re.compile(r"[\W_]+")


def fold(text: str) -> str:
    """Lower-case, accent-free, single-spaced: "Ærø Café  AS" -> "aero cafe as"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    # Letters that NFKD does not decompose into ASCII plus a combining mark.
    stripped = stripped.translate(_LIGATURES)
    return " ".join(_NON_WORD.sub(" ", stripped).split())


_LIGATURES = str.maketrans(
    {"æ": "ae", "ø": "o", "å": "a", "ß": "ss", "œ": "oe", "đ": "d", "ł": "l", "þ": "th"}
)


def normalize_email(email: str) -> str:
    return email.strip().lower()


def is_valid_email(email: str) -> bool:
    return bool(_EMAIL.match(email.strip()))


def email_domain(email: str) -> str:
    return normalize_email(email).rpartition("@")[2]


def normalize_domain(domain: str) -> str:
    domain = domain.strip().lower().rstrip(".")
    return domain.removeprefix("www.") if domain.startswith("www.") else domain


def is_valid_domain(domain: str) -> bool:
    return bool(_DOMAIN.match(normalize_domain(domain)))


def is_free_mail(domain: str) -> bool:
    return normalize_domain(domain) in FREE_MAIL_DOMAINS
