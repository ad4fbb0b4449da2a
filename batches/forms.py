from __future__ import annotations

from typing import Any, cast
from urllib.parse import urlsplit

import httpx
from django import forms
from django.conf import settings

from batches import secrets
from batches.models import Connection
from batches.results.validation import BATCH_ENDPOINTS, COMPLETION_WINDOWS, parse_metadata
from dashboard import outbound


class ConnectionForm(forms.ModelForm):
    """Create or change a connection. The key is write-only: a blank field keeps the stored one."""

    KEY_STORAGE = (("encrypted", "Store it encrypted"), ("env", "Read it from an environment variable"))
    # What stays editable on the connection made from OPENAI_* variables.
    SCHEDULE_FIELDS = ("enabled", "refresh_interval", "full_sync_interval")

    key_storage = forms.ChoiceField(choices=KEY_STORAGE, widget=forms.RadioSelect, initial="encrypted")
    api_key = forms.CharField(
        label="API key",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Leave blank to keep the current key.",
    )

    class Meta:
        model = Connection
        fields = (
            "name",
            "provider",
            "base_url",
            "api_key_env",
            "organization",
            "project",
            "enabled",
            "refresh_interval",
            "full_sync_interval",
        )
        help_texts = {
            "base_url": "For example https://api.openai.com/v1 or your Azure endpoint. Changing its host "
            "needs the key entered again.",
            "api_key_env": "For example OPENAI_API_KEY_TEAM2 or ACME_API_KEY; the dashboard's own "
            "settings are never accepted.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and self.instance.api_key_env and not self.instance.api_key_encrypted:
            self.initial["key_storage"] = "env"
        if self.instance.from_environment:
            # URL and key of this one come from OPENAI_* variables; only its schedule is editable.
            for name in [name for name in self.fields if name not in self.SCHEDULE_FIELDS]:
                self.fields.pop(name)

    def clean_base_url(self) -> str:
        value = self.cleaned_data["base_url"].strip()
        try:
            parts = urlsplit(value)
            # The client's own parser: a URL it cannot send to is refused here, not at the first sync.
            httpx.URL(value)
            valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
        except (ValueError, httpx.InvalidURL):  # a bad IPv6 literal or port; IDNA errors too
            valid = False
        if not valid:
            raise forms.ValidationError("Enter an http:// or https:// URL.")
        if not settings.DASHBOARD_ALLOW_INTERNAL_API_URLS:
            # The server would send requests (and the key) into its own network; the client checks
            # again, and pins the checked address, before every use.
            address = outbound.internal_address(value)
            if address is not None:
                raise forms.ValidationError(
                    f"The URL leads to an internal address ({address}). Connections may reach public "
                    "addresses only, unless the operator sets DASHBOARD_ALLOW_INTERNAL_API_URLS=1 for "
                    "a gateway on the internal network."
                )
        return value

    def clean_refresh_interval(self) -> int:
        value = self.cleaned_data["refresh_interval"]
        if value < 5:
            raise forms.ValidationError("At least 5 seconds, to spare the API's rate limits.")
        return value

    def clean_full_sync_interval(self) -> int:
        value = self.cleaned_data["full_sync_interval"]
        if value < 60:
            raise forms.ValidationError("At least 60 seconds.")
        return value

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data  # what ModelForm.clean returns, typed as never None
        if self.instance.from_environment:
            return data
        storage = data.get("key_storage")
        if storage == "env":
            name = data.get("api_key_env")
            refused = secrets.env_name_refusal(name) if name else None
            if not name:
                self.add_error("api_key_env", "Name the environment variable that holds the key.")
            elif refused:
                self.add_error("api_key_env", refused)
        elif storage == "encrypted":
            # A name left over from env storage is never read while a key is stored; drop it.
            data["api_key_env"] = ""
            if not data.get("api_key"):
                if not self.instance.api_key_encrypted:
                    self.add_error("api_key", "Enter the API key.")
                elif self._host_changed(data.get("base_url")):
                    # Otherwise "Test" would send the key stored for the old host to the new one.
                    self.add_error(
                        "api_key",
                        "The URL now points at another host: enter the key again, so that the key "
                        "stored for the old host is never sent to the new one.",
                    )
        return data

    def _host_changed(self, base_url: str | None) -> bool:
        if not self.instance.pk or not base_url:
            return False
        return _origin(base_url) != _origin(self.instance.base_url)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").rstrip("."), port or default


class CreateBatchForm(forms.Form):
    connection = forms.ModelChoiceField(queryset=Connection.objects.none(), empty_label=None)
    endpoint = forms.ChoiceField(choices=[(e, e) for e in BATCH_ENDPOINTS], initial="/v1/chat/completions")
    completion_window = forms.ChoiceField(choices=[(w, w) for w in COMPLETION_WINDOWS])
    metadata = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "project=search\nrun=nightly"}),
    )
    file = forms.FileField(widget=forms.ClearableFileInput(attrs={"accept": ".jsonl,application/jsonl"}))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        connection = cast(forms.ModelChoiceField, self.fields["connection"])
        connection.queryset = Connection.objects.filter(enabled=True).order_by("name")

    def clean_metadata(self) -> dict[str, str]:
        metadata, errors = parse_metadata(self.cleaned_data.get("metadata") or "")
        if errors:
            raise forms.ValidationError(errors)
        return metadata
