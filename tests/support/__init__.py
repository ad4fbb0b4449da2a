"""Helpers that more than one level of the suite uses: model factories, a webhook receiver, signed
webhook headers, real Celery processes."""
