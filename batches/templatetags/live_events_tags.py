"""`{% live_events_url %}`: where the page's push doorbell listens (settings.LIVE_EVENTS_URL; "" for none)."""

from __future__ import annotations

from django import template
from django.conf import settings

register = template.Library()


@register.simple_tag
def live_events_url() -> str:
    return settings.LIVE_EVENTS_URL
