from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from kk99 import views

api_v1 = [
    path("", include("accounts.api_urls")),
    path("", include("wallets.api_urls")),
    path("", include("trading.api_urls")),
    path("", include("marketdata.api_urls")),
    path("", include("risk.api_urls")),
]

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/v3/", include("trading.binance.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("wallets/chains/", include("wallets.chains.urls")),
    path("wallets/", include("wallets.urls")),
    path("", include("risk.urls")),
    path("", include("trading.urls")),
    path("", include("accounts.urls")),
]
