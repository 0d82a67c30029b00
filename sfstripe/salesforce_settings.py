"""Plain OAuth settings for `stream.salesforce` from the configuration."""

from __future__ import annotations

from sfstripe.config import Settings
from stream.salesforce.auth import OAuthSettings

REFRESH_TOKEN_CREDENTIAL = "salesforce_refresh_token"


def oauth_settings(settings: Settings) -> OAuthSettings:
    assert settings.sf_client_id is not None  # validated: Salesforce is on
    key_file = settings.sf_private_key_file
    return OAuthSettings(
        login_url=settings.sf_login_url,
        flow=settings.sf_auth_flow,
        client_id=settings.sf_client_id,
        client_secret=settings.sf_client_secret.reveal() if settings.sf_client_secret else None,
        username=settings.sf_username,
        password=settings.sf_password.reveal() if settings.sf_password else None,
        private_key=key_file.read_text() if key_file is not None else None,
        refresh_token=(settings.sf_refresh_token.reveal() if settings.sf_refresh_token else None),
        audience=settings.sf_jwt_audience,
    )
