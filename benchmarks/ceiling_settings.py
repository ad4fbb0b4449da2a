"""The dashboard's own settings, plus one URL: bench_poll_load.py's ceiling (see ceiling_urls.py).

Used only by the benchmarks, through DJANGO_SETTINGS_MODULE=ceiling_settings with benchmarks/ on the
Python path; the project's settings and URLs stay untouched.
"""

from dashboard.settings import *  # noqa: F403

ROOT_URLCONF = "ceiling_urls"
