"""Who may write, and the headers every answer carries (web layer).

Reads are open to whoever can reach the address (127.0.0.1 by default). A write needs all
of: a server started with writes allowed, the token printed at start (sent once as
`?token=`, then kept in an HttpOnly, SameSite=Strict cookie), and the CSRF value the
server renders into its own forms, from a page of the same origin.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

from starlette.requests import Request

from ddm.errors import InvalidInput

TOKEN_COOKIE = "ddm_token"
CSRF_FIELD = "csrf_token"
FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FORM_BYTES = 4096
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
# Our pages need nothing from anywhere else: no CDN, no inline script, no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}


class WriteRefused(Exception):
    """A write request that may not go ahead; `status` is 401 or 403."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Access:
    """Whether this server writes, and the secret that a write must show."""

    writes: bool = False
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)

    @property
    def csrf(self) -> str:
        """The value our forms carry: derived from the token, useless without the cookie."""
        return hmac.new(self.token.encode(), b"ddm-csrf", hashlib.sha256).hexdigest()

    def is_authenticated(self, request: Request) -> bool:
        cookie = request.cookies.get(TOKEN_COOKIE, "")
        return bool(cookie) and secrets.compare_digest(cookie, self.token)

    def check_writer(self, request: Request) -> None:
        """Raises WriteRefused: 403 on a read-only server, 401 without the token."""
        if not self.writes:
            raise WriteRefused(403, "this server is read-only: start `ddm serve --allow-uploads`")
        if not self.is_authenticated(request):
            raise WriteRefused(401, "open the address with ?token= that `ddm serve` printed")

    def check_csrf(self, request: Request, form_csrf: str | None) -> None:
        """Raises WriteRefused (403) unless the form came from one of our pages."""
        if not form_csrf or not secrets.compare_digest(form_csrf, self.csrf):
            raise WriteRefused(403, "missing or wrong CSRF token: submit the form of this site")
        origin = request.headers.get("origin")
        own = f"{request.url.scheme}://{request.url.netloc}"
        if origin is not None and origin != own:
            raise WriteRefused(403, f"cross-origin write refused (from {origin})")


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


async def form_field(request: Request, name: str) -> str | None:
    """One field of a small urlencoded form (our forms carry one or two fields: the CSRF
    value, and what the button acts on). The body is read once and kept by the request.

    Raises:
        InvalidInput: a form larger than MAX_FORM_BYTES.
    """
    from urllib.parse import parse_qs

    if request.headers.get("content-type", "").split(";")[0] != FORM_TYPE:
        return None
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise InvalidInput(f"a form of more than {MAX_FORM_BYTES} bytes")
    found = parse_qs(body.decode("utf-8", "replace")).get(name)
    return found[0] if found else None
