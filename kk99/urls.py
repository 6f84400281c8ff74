from django.contrib import admin
from django.urls import include, path
from django.http import HttpResponsePermanentRedirect
from django.templatetags.static import static
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from kk99 import devmail, metrics, views

api_v1 = [
    path("", include("accounts.api_urls")),
    path("", include("wallets.api_urls")),
    path("", include("trading.api_urls")),
    path("", include("marketdata.api_urls")),
    path("", include("risk.api_urls")),
    path("", include("margin.api_urls")),
]

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/v3/", include("trading.binance.urls")),
    path("sapi/v1/", include("margin.sapi_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Swagger UI from the sidecar's static files, its initialiser a script URL: works under the CSP.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("favicon.ico", lambda request: HttpResponsePermanentRedirect(static("favicon.svg"))),  # resolved per request (manifest-safe)
    path("dev/mailbox/", devmail.mailbox, name="dev-mailbox"),
    path("wallets/chains/", include("wallets.chains.urls")),
    path("wallets/", include("wallets.urls")),
    path("margin/", include("margin.urls")),
    path("strategies/", include("quant.urls")),
    path("", include("risk.urls")),
    path("", include("trading.urls")),
    path("", include("accounts.urls")),
]
