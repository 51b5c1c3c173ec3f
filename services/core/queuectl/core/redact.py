"""Keeping secrets out of output: Redis URLs masked the way redis-py reads them.

Every message, log line and status view that shows a Redis URL goes through
``mask_url``. It splits the URL as redis-py does (``urllib.parse``: the
userinfo is everything before the *last* ``@`` of the netloc, the user name
ends at its first ``:``), keeps scheme, user name, host, port and path, and
replaces the password and every query value whose name looks secret with
``***``. A URL that urllib would split somewhere other than the operator
meant (an unencoded ``/``, ``?`` or ``#`` in the password leaves an ``@``
outside the netloc) is masked conservatively: everything before the last
``@`` goes. ``url_problem`` names that mistake so that ``connect`` can refuse
such a URL instead of sending pieces of the password to DNS as a host name.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, unquote, unquote_plus, urlsplit

MASK = "***"
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")  # RFC 3986
# Query parameters whose value is masked: redis-py passes any name through as a
# keyword (password, ssl_password, ...), so match by words, not by a fixed list.
SECRET_WORDS = ("pass", "secret", "token", "auth", "key")
ENCODE_HINT = "percent-encode @ : / ? # % in the user name and password (%40 %3A %2F %3F %23 %25)"


def is_secret_name(name: str) -> bool:
    """True for a query parameter that may carry a secret (password, token, *key*, ...)."""
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


def mask_query(query: str) -> str:
    """``a=1&password=x`` as ``a=1&password=***``; pieces are split as parse_qs splits them.

    A value holding an ``@`` is masked too: in ``redis://u:12?x=ss@host`` it is the
    tail of a password that held an unencoded ``?``.
    """
    pieces = []
    for piece in query.split("&"):
        name, eq, value = piece.partition("=")
        secret = eq and (is_secret_name(unquote_plus(name)) or "@" in value)
        pieces.append(f"{name}={MASK}" if secret else piece)
    return "&".join(pieces)


def _parse(url: str) -> tuple[SplitResult | None, str | None]:
    """(the URL as redis-py splits it, None) or (None, why that split misplaces the userinfo).

    The reason never quotes the URL: any piece of it may be part of a password.
    """
    # With an @ anywhere, a bad port or a stray @ is a user name or password that
    # holds an unencoded / ? or #: urllib cut the netloc short there.
    userinfo = "@" in url.partition("://")[2]
    misread = f"the user name or password holds a reserved character; {ENCODE_HINT}"
    try:
        parts = urlsplit(url)
    except ValueError:
        return None, misread if userinfo else "not a valid URL (an unbalanced [ in the host?)"
    try:
        parts.port  # noqa: B018 - evaluated for its ValueError
    except ValueError:
        return None, misread if userinfo else "the port is not a number from 0 to 65535"
    # Only an @ inside a query value (?password=a@b) is where the operator wrote it.
    stray_in_query = any("@" in piece.partition("=")[0] for piece in parts.query.split("&"))
    if "@" in parts.path or "@" in parts.fragment or stray_in_query:
        return None, misread
    return parts, None


def _split(url: str) -> SplitResult | None:
    """The URL as redis-py splits it, or None when that split would misplace the userinfo."""
    return _parse(url)[0] if "://" in url else None


def url_problem(url: str) -> str | None:
    """Why redis-py would misread ``url`` (without quoting any of it), or None if it is fine."""
    if "://" not in url:
        return None  # redis-py's own scheme check says what is wrong
    return _parse(url)[1]


def _mask_netloc(netloc: str) -> str:
    userinfo, at, hostport = netloc.rpartition("@")
    if not at:
        return netloc
    user, colon, password = userinfo.partition(":")
    return f"{user}{colon}{MASK if password else ''}@{hostport}"


def _conservative(url: str) -> str:
    """Mask a URL that cannot be split reliably: drop everything before its last @."""
    scheme, sep, rest = url.partition("://")
    if not sep or not _SCHEME_RE.match(scheme):
        # Not a URL at all (or "user:pw@redis://..."): it may be anything, a password
        # pasted into the wrong variable.
        return MASK
    _, at, tail = rest.rpartition("@")
    if at:
        rest = f"{MASK}@{tail}"
    rest, hash_, _fragment = rest.partition("#")
    base, qmark, query = rest.partition("?")
    masked = f"{base}{qmark}{mask_query(query)}" if qmark else base
    return f"{scheme}{sep}{masked}{'#' + MASK if hash_ else ''}"


def mask_url(url: str) -> str:
    """``url`` with its password and secret query values replaced by ``***``; never raises."""
    parts = _split(url)
    if parts is None:
        return _conservative(url)
    out = f"{parts.scheme}://{_mask_netloc(parts.netloc)}{parts.path}"
    if parts.query:
        out += f"?{mask_query(parts.query)}"
    if parts.fragment:
        out += f"#{MASK}"  # never sent to Redis; may be the tail of a password
    return out


def url_secrets(url: str) -> list[str]:
    """Every secret in ``url`` as it may appear in text: raw and percent-decoded."""
    found: list[str] = []
    parts = _split(url)
    if parts is None:
        # No reliable split: the whole region before the last @ is secret.
        head = url.partition("://")[2].rpartition("@")[0]
        found += [head, unquote(head)]
    else:
        userinfo = parts.netloc.rpartition("@")[0]
        password = userinfo.partition(":")[2]
        found += [password, unquote(password)]
        for piece in parts.query.split("&"):
            name, eq, value = piece.partition("=")
            if eq and (is_secret_name(unquote_plus(name)) or "@" in value):
                found += [value, unquote_plus(value)]
    # Longest first, so that a secret containing another is replaced whole.
    return sorted({s for s in found if s}, key=len, reverse=True)


def redact(text: str, url: str) -> str:
    """``text`` (an exception message, say) with every secret of ``url`` replaced by ``***``."""
    for secret in url_secrets(url):
        text = text.replace(secret, MASK)
    return text
