"""URLs: DOT under /o/, Django's login form, the protected resource, the test controls."""

from django.contrib.auth import views as auth_views
from django.urls import include, path

from dotserver import views

urlpatterns = [
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("api/whoami", views.whoami),
    path("__test/stats", views.stats),
    path("__test/reset", views.reset),
    path("__test/expire-access-tokens", views.expire_access_tokens),
]
