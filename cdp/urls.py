from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from cdp.api.authentication import AuthenticationView
from cdp.api.health import healthz, readyz
from cdp.console import console_site

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("api/accounts/authen", AuthenticationView.as_view(), name="authen"),
    path("dhub-i/api/v1.0/", include("ingestion.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("console/", console_site.urls),
]

handler404 = "cdp.errors.page_not_found"
handler500 = "cdp.errors.server_error"
