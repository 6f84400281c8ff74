"""Browser forms: shape only (the services decide and report business errors)."""
from __future__ import annotations

from django import forms

from accounts.models import KycSubmission
from accounts.validators import validate_adult_date_of_birth, validate_country_code


class RegisterForm(forms.Form):
    email = forms.EmailField(max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}))
    password1 = forms.CharField(label="Password", strip=False, max_length=128, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    password2 = forms.CharField(label="Repeat password", strip=False, max_length=128, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def clean(self):
        data = super().clean()
        if data.get("password1") and data.get("password1") != data.get("password2"):
            self.add_error("password2", "The passwords do not match.")
        return data


class LoginForm(forms.Form):
    email = forms.EmailField(max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "username", "autofocus": True}))
    password = forms.CharField(strip=False, max_length=128, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Authentication code", max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}),
        help_text="6 digits from your app, or a recovery code.",
    )


class EmailForm(forms.Form):
    email = forms.EmailField(max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"}))


class SetPasswordForm(forms.Form):
    new_password1 = forms.CharField(label="New password", strip=False, max_length=128, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    new_password2 = forms.CharField(label="Repeat new password", strip=False, max_length=128, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def clean(self):
        data = super().clean()
        if data.get("new_password1") and data.get("new_password1") != data.get("new_password2"):
            self.add_error("new_password2", "The passwords do not match.")
        return data


class PasswordChangeForm(SetPasswordForm):
    old_password = forms.CharField(label="Current password", strip=False, max_length=128, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))
    field_order = ["old_password", "new_password1", "new_password2"]


class KycForm(forms.Form):
    requested_tier = forms.TypedChoiceField(choices=KycSubmission._meta.get_field("requested_tier").choices, coerce=int, initial=2)
    full_name = forms.CharField(max_length=200)
    date_of_birth = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), validators=[validate_adult_date_of_birth])
    country = forms.CharField(max_length=2, min_length=2, help_text="Two-letter ISO code, e.g. DE.", validators=[validate_country_code])
    address = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 3}))
    id_number = forms.CharField(max_length=64, label="Identity document number")
    id_document = forms.FileField(label="Identity document (JPEG, PNG or PDF)")
    selfie = forms.FileField(label="Selfie holding the document")
    proof_of_address = forms.FileField(label="Proof of address (tier 3)", required=False)

    def clean_country(self):
        return self.cleaned_data["country"].upper()


class ApiKeyForm(forms.Form):
    label = forms.CharField(max_length=64)
    trade = forms.BooleanField(required=False, label="Allow trading")
    withdraw = forms.BooleanField(required=False, label="Allow withdrawals")
    ip_allowlist = forms.CharField(
        required=False, max_length=2000, label="IP allow-list", widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Optional: IP addresses or CIDR networks, separated by commas or new lines.",
    )
    otp = forms.CharField(required=False, max_length=32, label="Two-factor code", widget=forms.TextInput(attrs={"autocomplete": "one-time-code"}))

    def permissions(self) -> list[str]:
        return ["read"] + [name for name in ("trade", "withdraw") if self.cleaned_data.get(name)]

    def ip_entries(self) -> list[str]:
        text = self.cleaned_data.get("ip_allowlist") or ""
        return [part.strip() for part in text.replace(",", "\n").splitlines() if part.strip()]
