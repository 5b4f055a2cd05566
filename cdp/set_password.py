"""A new member's first password, set through a one-time link an owner or admin hands them.

The Console makes the link (`set_password_url`) when it adds a member who has no password,
and again on request ("New set-password link…" on the member's row); nothing sends it:
the product may run without SMTP. The page behind it is Django's PasswordResetConfirmView
with the Console's look: it checks Django's token (`services.members.set_password_token_issue`
makes it), applies AUTH_PASSWORD_VALIDATORS and sends the member to the Console's sign-in.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.forms import SetPasswordForm
from django.contrib.auth.views import PasswordResetConfirmView
from django.http import HttpRequest, HttpResponse
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.utils.timesince import timeuntil

from cdp.console import console_site

# The route's name in cdp/urls.py (outside the Console's `admin` namespace: see there).
URL_NAME = "console_set_password"


def set_password_url(request: HttpRequest, uidb64: str, token: str) -> str:
    """The absolute link a member opens to set their password (shown once, never stored)."""
    return request.build_absolute_uri(reverse(URL_NAME, args=[uidb64, token]))


def link_lifetime() -> str:
    """How long a link works, in words ("3 days"): PASSWORD_RESET_TIMEOUT."""
    now = timezone.now()
    return timeuntil(now + timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT), now)


class MemberSetPasswordView(PasswordResetConfirmView):
    """GET with a valid token: the token moves to the session and the page redirects to a
    URL without it (Django's guard against leaking it in a Referer), which shows the form.
    A used, expired or garbled link shows `validlink` False: a page that says so (200)."""

    form_class = SetPasswordForm
    template_name = "registration/console_set_password.html"
    title = "Set your password"
    success_url = reverse_lazy("admin:login")
    # The URL that replaces the token ("…/set-password/<uidb64>/choose/").
    reset_url_token = "choose"

    def form_valid(self, form: SetPasswordForm) -> HttpResponse:
        response = super().form_valid(form)
        messages.success(
            self.request, "Your password is set. Sign in with your email and the new password."
        )
        return response

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = {**console_site.each_context(self.request), **super().get_context_data(**kwargs)}
        if not context["validlink"]:
            context["title"] = "This link was used or has expired"
        return context
