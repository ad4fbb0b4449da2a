#!/usr/bin/env bash
# Once per release, on one machine, with /etc/batch-dashboard/env's variables in the environment and the
# new code in the working directory: the database schema, the static files nginx serves, and Django's
# deployment checks (which fail on an unsafe setting: DEBUG on, a short secret key, no HSTS, ...).
# `uv sync --frozen --no-dev` comes first (README, "Deploying for a team").
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
"$python" manage.py migrate --noinput
"$python" manage.py collectstatic --noinput --verbosity 0
"$python" manage.py check --deploy
