from __future__ import annotations

import getpass
import os
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts import roles, services


class Command(BaseCommand):
    help = "Create a user (or change an existing one's role): viewer, operator or admin."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", choices=roles.ROLES, default=roles.VIEWER)
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--password-env",
            help="Name of an environment variable holding the password (else it is asked for).",
        )

    def handle(
        self, *args: Any, username: str, role: str, email: str, password_env: str | None, **options: Any
    ) -> None:
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(username=username, defaults={"email": email})
        if created or password_env:
            password = self._password(password_env)
            try:
                validate_password(password, user)
            except ValidationError as error:
                if created:
                    user.delete()
                raise CommandError(" ".join(error.messages)) from None
            user.set_password(password)
        services.save_user_role(user, role, actor_name="manage.py")
        self.stdout.write(f"{'Created' if created else 'Updated'} {username} with the {role} role.")

    def _password(self, password_env: str | None) -> str:
        if password_env:
            password = os.environ.get(password_env, "")
            if not password:
                raise CommandError(f"The environment variable {password_env} is empty or unset.")
            return password
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Password (again): "):
            raise CommandError("The passwords differ.")
        return first
