import os
from typing import Any

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger

from dashboard.redaction import redact_every_handler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")

app = Celery("dashboard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# Worker and beat processes (prefork children inherit it) replace the root logger's handlers, Django's
# redacting console handler included, and give the task logger a handler of its own. Put the filter
# back on every handler Celery installs. print() output is covered too: worker_redirect_stdouts
# (on by default, for worker and beat) sends it to the "celery.redirected" logger, whose records
# reach the root handlers.
@after_setup_logger.connect
@after_setup_task_logger.connect
def _redact_celery_log_handlers(**kwargs: Any) -> None:
    redact_every_handler()
