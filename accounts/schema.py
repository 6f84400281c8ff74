"""drf-spectacular description of the API-key (HMAC) authentication."""
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "ApiKeyHmac"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "X-MBX-APIKEY",
            "description": "Binance-style signing: also send `timestamp`, optional `recvWindow` and `signature` = hex "
            "HMAC-SHA256(secret, raw query string without signature + raw body).",
        }
