"""The test shop's URLs."""

from django.contrib import admin
from django.urls import path

from tests.django import views

urlpatterns = [
    path("signup/", views.signup),
    path("async-signup/", views.async_signup),
    path("invoice/", views.invoice),
    path("contact/", views.contact),
    path("admin/", admin.site.urls),
]
