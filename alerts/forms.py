from __future__ import annotations

from typing import Any

from django import forms

from alerts import environment
from alerts.channels import url_problem
from alerts.models import EVENT_LABELS, EVENTS, Channel
from batches import secrets
from batches.models import Connection

NO_KEY = (
    "DASHBOARD_ENCRYPTION_KEY is not set, so the dashboard cannot store it encrypted: name an "
    "environment variable that holds it instead, or set DASHBOARD_ENCRYPTION_KEY "
    "(manage.py generate_encryption_key)."
)
NO_KEY_ASK_ADMIN = (
    "DASHBOARD_ENCRYPTION_KEY is not set, so the dashboard cannot store it encrypted; an admin can set "
    "it (manage.py generate_encryption_key)."
)


class ChannelForm(forms.ModelForm):
    """The URL and the secret are write-only: they are stored encrypted, never put back into the page,
    and leaving them empty when editing keeps the stored ones. Either may instead be read from an
    environment variable named here."""

    events = forms.MultipleChoiceField(
        choices=[(event, EVENT_LABELS[event]) for event in EVENTS],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="None ticked means every event.",
    )
    url = forms.URLField(
        required=False,
        max_length=1000,
        assume_scheme="https",
        label="URL",
        # A password field: the URL's path is usually a token, and the browser must not offer it back.
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Webhook and Slack: where to post. Stored encrypted; only its host and last four "
        "characters are shown.",
    )
    url_env = forms.CharField(
        required=False,
        max_length=100,
        label="or the environment variable holding the URL",
        help_text="For example ALERT_OPS_SLACK_URL.",
    )
    secret = forms.CharField(
        required=False,
        max_length=200,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Webhooks only: the key the receiver verifies the HMAC-SHA256 signature with.",
    )
    secret_env = forms.CharField(
        required=False, max_length=100, label="or the environment variable holding the secret"
    )
    connection = forms.ModelChoiceField(
        queryset=Connection.objects.all(), required=False, empty_label="All connections"
    )

    class Meta:
        model = Channel
        fields = (
            "name",
            "kind",
            "url",
            "url_env",
            "email",
            "secret",
            "secret_env",
            "connection",
            "events",
            "enabled",
        )

    def __init__(self, *args: Any, allow_env: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The server's environment is the admins' business: a viewer's channel stores its own values.
        self.allow_env = allow_env
        if not allow_env:
            del self.fields["url_env"], self.fields["secret_env"]
        if self.instance.pk and self.instance.url_hint:
            self.fields["url"].help_text = (
                f"Now {self.instance.url_hint}; leave empty to keep it. " + self.fields["url"].help_text
            )

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        problem = url_problem(url) if url else None
        if problem:
            # The reason, not the URL: it may carry a token and is shown in the page.
            raise forms.ValidationError(f"Enter a URL the dashboard can send to: {problem}.")
        return url

    def _clean_env_name(self, field: str) -> str:
        name = self.cleaned_data[field].strip()
        refused = environment.refusal(name) if name else None
        if refused:
            raise forms.ValidationError(refused)
        return name

    def clean_url_env(self) -> str:
        return self._clean_env_name("url_env")

    def clean_secret_env(self) -> str:
        return self._clean_env_name("secret_env")

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data  # what ModelForm.clean returns, typed as never None
        kind = data.get("kind")
        channel = self.instance
        for field, env_field, label in (("url", "url_env", "URL"), ("secret", "secret_env", "secret")):
            if data.get(field) and data.get(env_field):
                self.add_error(env_field, f"Give the {label} or the variable that holds it, not both.")
            elif data.get(field) and not encryption_configured():
                self.add_error(field, NO_KEY if self.allow_env else NO_KEY_ASK_ADMIN)
        if (
            kind in (Channel.Kind.WEBHOOK, Channel.Kind.SLACK)
            and "url" not in self.errors
            and not (data.get("url") or data.get("url_env") or channel.url_encrypted)
        ):
            self.add_error("url", "A webhook needs the URL to post to.")
        if kind == Channel.Kind.EMAIL and not data.get("email"):
            self.add_error("email", "An email channel needs an address.")
        if (
            kind == Channel.Kind.WEBHOOK
            and "secret" not in self.errors
            and not (data.get("secret") or data.get("secret_env") or channel.secret_encrypted)
        ):
            self.add_error("secret", "A webhook needs a secret to sign its requests with.")
        return data

    def save(self, commit: bool = True) -> Channel:
        """Encrypts only now, once the whole form is valid: a value typed into a refused form is never
        kept, not even encrypted."""
        channel = super().save(commit=False)
        for field in ("url", "secret"):
            value = self.cleaned_data.get(field)
            if value:
                setattr(channel, field, value)  # encrypts, and empties the variable's name
            elif self.cleaned_data.get(f"{field}_env"):
                setattr(channel, f"{field}_encrypted", "")
                if field == "url":
                    channel.url_hint = ""
            # Neither: a stored (encrypted) value stays; a variable's name is a plain field shown with
            # its value, so emptying it removes it.
        if commit:
            channel.save()
            self.save_m2m()
        return channel


def encryption_configured() -> bool:
    try:
        secrets.encrypt("")  # nothing to keep secret: only whether a usable key is set
    except secrets.EncryptionNotConfigured:
        return False
    return True
