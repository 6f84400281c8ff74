"""The accounts routes exactly as kk99/urls.py mounts them, without the other apps' routes,
so this suite tests the accounts app alone (other apps are built concurrently)."""
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include([path("", include("accounts.api_urls"))])),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("", include("accounts.urls")),
]
