"""OAuth 2.0 for a server integration: JWT bearer, client credentials, password, refresh token.

One `SalesforceAuth` is shared by the REST and CometD clients. A 401 anywhere leads to
`refresh(stale)`, which is single-flight: callers that saw the same stale token wait for one new
token instead of each asking for their own. When Salesforce rotates a refresh token, the newest
one is saved (`RefreshTokenStore`) and used from then on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal, Protocol

import aiohttp
import anyio
import jwt
import msgspec
import structlog

log = structlog.get_logger(__name__)

Flow = Literal["jwt", "client_credentials", "password", "refresh_token"]
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class AuthError(Exception):
    """The token endpoint refused (`retryable` False: fix the credentials) or could not be
    reached (`retryable` True)."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Token(msgspec.Struct, frozen=True):
    access_token: str
    instance_url: str
    id: str
    issued_at: str | None = None
    token_type: str = "Bearer"
    refresh_token: str | None = None

    def __repr__(self) -> str:  # never print the access token
        return f"Token(instance_url={self.instance_url!r}, id={self.id!r})"

    @property
    def user_id(self) -> str:
        """The integration user (`.../id/<org id>/<user id>`): CDC's `commitUser` for our writes."""
        return self.id.rstrip("/").rsplit("/", 1)[-1]

    @property
    def authorization(self) -> str:
        return f"{self.token_type} {self.access_token}"


class RefreshTokenStore(Protocol):
    async def load(self) -> str | None: ...
    async def save(self, token: str) -> None: ...


@dataclass(frozen=True)
class OAuthSettings:
    login_url: str
    flow: Flow
    client_id: str
    client_secret: str | None = None
    username: str | None = None
    password: str | None = None
    private_key: str | None = None
    refresh_token: str | None = None
    audience: str = "https://login.salesforce.com"

    def __repr__(self) -> str:
        return f"OAuthSettings(login_url={self.login_url!r}, flow={self.flow!r})"


class SalesforceAuth:
    def __init__(
        self,
        settings: OAuthSettings,
        session: aiohttp.ClientSession,
        refresh_tokens: RefreshTokenStore | None = None,
    ) -> None:
        self._settings = settings
        self._session = session
        self._refresh_tokens = refresh_tokens
        self._token: Token | None = None
        self._lock = anyio.Lock()

    async def current(self) -> Token:
        if self._token is None:
            return await self.refresh(None)
        return self._token

    async def refresh(self, stale: Token | None) -> Token:
        """A new token, unless someone already replaced `stale` meanwhile."""
        async with self._lock:
            if self._token is not None and self._token is not stale:
                return self._token
            self._token = await self._request_token()
            log.info("salesforce_authenticated", flow=self._settings.flow, user=self._token.user_id)
            return self._token

    async def _form(self) -> dict[str, str]:
        s = self._settings
        if s.flow == "jwt":
            assert s.username and s.private_key
            claims = {"iss": s.client_id, "sub": s.username, "aud": s.audience}
            assertion = jwt.encode(
                {**claims, "exp": int(time.time()) + 180}, s.private_key, algorithm="RS256"
            )
            return {"grant_type": JWT_GRANT, "assertion": assertion}
        if s.flow == "client_credentials":
            assert s.client_secret
            return {
                "grant_type": "client_credentials",
                "client_id": s.client_id,
                "client_secret": s.client_secret,
            }
        if s.flow == "password":
            assert s.client_secret and s.username and s.password
            return {
                "grant_type": "password",
                "client_id": s.client_id,
                "client_secret": s.client_secret,
                "username": s.username,
                "password": s.password,
            }
        stored = await self._refresh_tokens.load() if self._refresh_tokens else None
        refresh_token = stored or s.refresh_token
        assert refresh_token
        form = {"grant_type": "refresh_token", "client_id": s.client_id}
        form["refresh_token"] = refresh_token
        if s.client_secret:
            form["client_secret"] = s.client_secret
        return form

    async def _request_token(self) -> Token:
        url = self._settings.login_url.rstrip("/") + "/services/oauth2/token"
        try:
            async with self._session.post(url, data=await self._form()) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AuthError(f"token endpoint unreachable: {exc!r}", retryable=True) from exc
        if status != 200:
            try:
                error = msgspec.json.decode(body)
                reason = f"{error.get('error')}: {error.get('error_description')}"
            except (msgspec.DecodeError, AttributeError):
                reason = f"HTTP {status}"
            raise AuthError(f"authentication refused ({reason})", retryable=status >= 500)
        token = msgspec.json.decode(body, type=Token)
        if token.refresh_token and self._refresh_tokens is not None:
            await self._refresh_tokens.save(token.refresh_token)  # rotation: keep the newest
        return token
