from django.http import Http404, HttpRequest, HttpResponse, HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from cdp.api.authentication import AuthenticationView
from cdp.api.health import healthz, readyz
from cdp.console import console_site
from cdp.errors import page_not_found
from cdp.set_password import URL_NAME as SET_PASSWORD_URL_NAME
from cdp.set_password import MemberSetPasswordView


def api_path_not_found(request: HttpRequest) -> HttpResponse:
    return page_not_found(request, Http404())


def favicon(request: HttpRequest) -> HttpResponse:
    """Where a browser looks for the icon of a page that names none (a JSON answer, the
    API's docs): the Console's, as its pages link it."""
    return HttpResponsePermanentRedirect(static("console/favicon.svg"))


urlpatterns = [
    path("favicon.ico", favicon, name="favicon"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("api/accounts/authen", AuthenticationView.as_view(), name="authen"),
    path("dhub-i/api/v1.0/", include("ingestion.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    # Opened signed out, so not a Console page: `console_site.register_view` puts its views
    # behind the Console's sign-in. Before the Console's URLs, whose catch-all would take it.
    path(
        "console/set-password/<uidb64>/<token>/",
        MemberSetPasswordView.as_view(),
        name=SET_PASSWORD_URL_NAME,
    ),
    path("console/", console_site.urls),
    # Every other API path: the JSON NOT_FOUND, in every mode. handler404 gives it too, but
    # under DEBUG Django answers an unmatched path with its HTML debug page instead.
    re_path(r"^(?:dhub-i|api)/", api_path_not_found),
]

handler404 = "cdp.errors.page_not_found"
handler500 = "cdp.errors.server_error"
