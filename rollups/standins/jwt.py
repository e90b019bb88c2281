"""HS256 JSON Web Tokens as celestia-node issues them: ``{"Allow": ["public", "read", …]}``.

celestia-node signs its auth tokens with an HS256 key from its keystore; a token's ``Allow``
claim lists every permission level it grants (cumulative: a ``write`` token lists public, read
and write). :func:`make_token` issues one for a level; :func:`verify_token` checks the signature
and returns the granted levels (``InvalidToken`` otherwise).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from rollups.celestia.methods import Permission

__all__ = ["InvalidToken", "make_token", "verify_token"]


class InvalidToken(ValueError):
    """A token that is malformed, not HS256, or not signed with the node's secret."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise InvalidToken("token is not base64url") from exc


def make_token(secret: bytes, permission: Permission | str) -> str:
    """A token granting ``permission`` and every level below it."""
    level = Permission(permission)
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {"Allow": [p.value for p in level.granted()]}
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def verify_token(secret: bytes, token: str) -> frozenset[Permission]:
    """The levels a token grants; ``InvalidToken`` when it does not verify."""
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("token must have three parts")
    try:
        header: Any = json.loads(_unb64(parts[0]))
    except json.JSONDecodeError as exc:
        raise InvalidToken("token header is not JSON") from exc
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        raise InvalidToken("token is not HS256")
    expected = hmac.new(secret, f"{parts[0]}.{parts[1]}".encode("ascii"), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, _unb64(parts[2])):
        raise InvalidToken("bad token signature")
    try:
        claims: Any = json.loads(_unb64(parts[1]))
    except json.JSONDecodeError as exc:
        raise InvalidToken("token claims are not JSON") from exc
    allow = claims.get("Allow") if isinstance(claims, dict) else None
    if not isinstance(allow, list):
        raise InvalidToken('token has no "Allow" list')
    granted = set()
    for item in allow:
        if isinstance(item, str) and item in Permission._value2member_map_:
            granted.add(Permission(item))
    return frozenset(granted)
