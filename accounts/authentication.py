"""API-key authentication (Binance-style HMAC signing). Placeholder until implemented."""
from rest_framework.authentication import BaseAuthentication


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        return None
