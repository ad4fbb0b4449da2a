from __future__ import annotations

from typing import Any

from django import forms

from alerts.models import EVENT_LABELS, EVENTS, Channel
from batches.models import Connection


class ChannelForm(forms.ModelForm):
    """The secret is write-only: it is never put back into the page, and leaving it empty when editing
    keeps the stored one."""

    events = forms.MultipleChoiceField(
        choices=[(event, EVENT_LABELS[event]) for event in EVENTS],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="None ticked means every event.",
    )
    secret = forms.CharField(
        required=False,
        max_length=200,
        widget=forms.PasswordInput(render_value=False),
        help_text="Webhooks only: the key the receiver verifies the HMAC-SHA256 signature with.",
    )
    url = forms.URLField(required=False, max_length=1000, assume_scheme="https", label="URL")
    connection = forms.ModelChoiceField(
        queryset=Connection.objects.all(), required=False, empty_label="All connections"
    )

    class Meta:
        model = Channel
        fields = ("name", "kind", "url", "email", "secret", "connection", "events", "enabled")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        kind = data.get("kind")
        if kind in (Channel.Kind.WEBHOOK, Channel.Kind.SLACK) and not data.get("url"):
            self.add_error("url", "A webhook needs the URL to post to.")
        if kind == Channel.Kind.EMAIL and not data.get("email"):
            self.add_error("email", "An email channel needs an address.")
        if kind == Channel.Kind.WEBHOOK and not data.get("secret") and not self.instance.secret:
            self.add_error("secret", "A webhook needs a secret to sign its requests with.")
        return data

    def save(self, commit: bool = True) -> Channel:
        channel = super().save(commit=False)
        if not self.cleaned_data.get("secret") and self.instance.pk:
            channel.secret = Channel.objects.filter(pk=self.instance.pk).values_list("secret", flat=True)[0]
        if commit:
            channel.save()
        return channel
