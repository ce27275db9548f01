"""Chat surfaces: the OpenAI-compatible API, the chatbot page, status."""

from django.urls import path

from . import views
from .api import views as api

urlpatterns = [
    # OpenAI-compatible API (base URL: <site>/v1), bearer client keys.
    path("v1/chat/completions", api.chat_completions, name="api-chat-completions"),
    path("v1/models", api.models, name="api-models"),
    path("v1/<path:path>", api.not_found, name="api-not-found"),
    # Operations.
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("api/status", api.status, name="api-status"),
    # The chatbot page, for signed-in users (session + CSRF).
    path("chat/", views.chat_page, name="chat"),
    path("chat/send", views.chat_send, name="chat-send"),
    path("chat/progress/<str:progress_id>", views.chat_progress, name="chat-progress"),
    path("chat/login/", views.ChatLoginView.as_view(), name="chat-login"),
    path("chat/logout/", views.ChatLogoutView.as_view(), name="chat-logout"),
]
