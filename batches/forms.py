from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django import forms

from batches.models import Connection


class ConnectionForm(forms.ModelForm):
    """Create or change a connection. The key is write-only: a blank field keeps the stored one."""

    KEY_STORAGE = (("encrypted", "Store it encrypted"), ("env", "Read it from an environment variable"))

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
        help_texts = {"base_url": "For example https://api.openai.com/v1 or your Azure endpoint."}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and self.instance.api_key_env and not self.instance.api_key_encrypted:
            self.initial["key_storage"] = "env"
        if self.instance.from_environment:
            # URL and key of this one come from OPENAI_* variables; only its schedule is editable.
            for name in (
                "name",
                "provider",
                "base_url",
                "api_key_env",
                "organization",
                "project",
                "key_storage",
                "api_key",
            ):
                self.fields.pop(name)

    def clean_base_url(self) -> str:
        value = self.cleaned_data["base_url"].strip()
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise forms.ValidationError("Enter an http:// or https:// URL.")
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
        data = super().clean()
        if self.instance.from_environment:
            return data
        storage = data.get("key_storage")
        if storage == "env":
            if not data.get("api_key_env"):
                self.add_error("api_key_env", "Name the environment variable that holds the key.")
            elif not data["api_key_env"].replace("_", "").isalnum():
                self.add_error("api_key_env", "Letters, digits and underscores only.")
        elif storage == "encrypted" and not data.get("api_key") and not self.instance.api_key_encrypted:
            self.add_error("api_key", "Enter the API key.")
        return data
