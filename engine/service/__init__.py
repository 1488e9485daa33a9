"""The HTTP service: JSON API, provider webhooks, one-click unsubscribe, dashboard and metrics.

It runs in its own process (``followup serve``) and shares only the database with the worker.
"""
from .app import create_app

__all__ = ["create_app"]
