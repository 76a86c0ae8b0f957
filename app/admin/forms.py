"""Console forms (flask-wtf: CSRF plus quick per-field checks); the services validate for real.

Each form knows how to turn itself into the plain dict its service takes (`payload()`), and
`apply_service_error` puts a service's complaint back onto the field it names.
"""
from __future__ import annotations

from datetime import datetime, time, timezone
from decimal import Decimal

from flask_wtf import FlaskForm
from sqlalchemy.exc import IntegrityError
from wtforms import (BooleanField, DateField, DecimalField, FloatField, IntegerField,
                     PasswordField, SelectField, SelectMultipleField, StringField, TextAreaField)
from wtforms.validators import DataRequired, Length, NumberRange, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

try:  # WTForms >= 3.3 deprecates (value, label) tuples and optgroup dicts
    from wtforms.fields.choices import SelectChoice
except ImportError:  # pragma: no cover - older WTForms
    SelectChoice = None

from app.extensions import db
from app.models.key import SCOPES
from app.models.model import KINDS
from app.models.provider import TRUST_LEVELS
from app.services.errors import ServiceError
from app.services.keys import LIMIT_FIELDS, PERIODS

# --- shared --------------------------------------------------------------------------------------


def options(pairs, optgroup: str | None = None) -> list:
    """(value, label) pairs as select choices for whichever WTForms is installed."""
    if SelectChoice is None:
        return list(pairs)
    return [SelectChoice(value, label, optgroup=optgroup) for value, label in pairs]


def grouped_options(groups: dict[str, list]) -> list | dict:
    """{"group label": [(value, label), ...]} rendered as <optgroup>s."""
    if SelectChoice is None:
        return groups
    return [choice for group, pairs in groups.items() for choice in options(pairs, group)]


class MultiCheckboxField(SelectMultipleField):
    """A list of checkboxes posting the same name (scopes, capabilities)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class ConfirmForm(FlaskForm):
    """No fields: a CSRF-protected "Yes, do it" button for delete/revoke/import."""


def apply_service_error(form: FlaskForm, exc: ServiceError, aliases: dict[str, str] | None = None) -> None:
    """Show a service's error on the field it names; unknown fields become form-level errors."""
    aliases = aliases or {}
    errors = exc.errors or {None: exc.message}
    for field_name, message in errors.items():
        field = form._fields.get(aliases.get(field_name, field_name)) if field_name else None
        if field is not None:
            field.errors = [*field.errors, message]
        else:
            form.form_errors.append(message)


def attempt(form: FlaskForm, action, *args, aliases: dict[str, str] | None = None):
    """Call a service write; on ServiceError roll back, put the errors on the form, return None.

    no_autoflush: an update's uniqueness check queries the table while the edited row is still
    pending; autoflushing it first would hit the UNIQUE constraint (a 500) before the service
    could raise its Conflict (a form error).
    """
    try:
        with db.session.no_autoflush:
            return action(*args)
    except ServiceError as exc:
        db.session.rollback()
        apply_service_error(form, exc, aliases)
    except IntegrityError:  # a concurrent write won a race the service's check could not see
        db.session.rollback()
        form.form_errors.append("This conflicts with a record that was just saved elsewhere; "
                                "reload and try again.")
    return None


def plain_decimal(value: Decimal | float | None) -> Decimal | None:
    """0.150000 -> 0.15 and 1E+2 -> 100: what an operator typed, not the column's scale."""
    if value is None:
        return None
    return Decimal(format(Decimal(str(value)).normalize(), "f"))


def _number(value):
    """Decimal -> str for the services (exact), everything else unchanged."""
    return str(value) if isinstance(value, Decimal) else value


class LimitFields:
    """Rate limits (rpm … concurrency), shared by keys, models and providers; blank = unlimited.

    A plain mixin: WTForms collects fields from every class in a form's MRO.
    """

    rpm = IntegerField("Requests / minute", [Optional(), NumberRange(1, 10**12)])
    rph = IntegerField("Requests / hour", [Optional(), NumberRange(1, 10**12)])
    rpd = IntegerField("Requests / day", [Optional(), NumberRange(1, 10**12)])
    tpm = IntegerField("Tokens / minute", [Optional(), NumberRange(1, 10**12)])
    tpd = IntegerField("Tokens / day", [Optional(), NumberRange(1, 10**12)])
    concurrency = IntegerField("Concurrent requests", [Optional(), NumberRange(1, 10**12)])

    def limits_payload(self) -> dict:
        """The `limits` dict the services take: only the fields that were filled in."""
        return {f: self[f].data for f in LIMIT_FIELDS if self[f].data is not None}

    @staticmethod
    def limits_initial(limits: dict | None) -> dict:
        return {f: (limits or {}).get(f) for f in LIMIT_FIELDS}


def budget_payload(form: FlaskForm) -> dict:
    """budget_amount/period/soft_pct -> the services' `budget` dict ({} = no budget)."""
    if form.budget_amount.data is None:
        return {}
    return {"amount_usd": str(form.budget_amount.data), "period": form.budget_period.data,
            "soft_pct": form.budget_soft_pct.data or 80}


def budget_initial(budget: dict | None) -> dict:
    budget = budget or {}
    return {"budget_amount": plain_decimal(budget.get("amount_usd")) if budget else None,
            "budget_period": budget.get("period", "month"),
            "budget_soft_pct": budget.get("soft_pct", 80)}


class BudgetFields:
    """A spending cap (keys and teams); `budget_payload`/`budget_initial` map it to the services."""

    budget_amount = DecimalField("Budget (USD)", [Optional(), NumberRange(0, 10**9)], places=None,
                                 description="Blank = no budget.")
    budget_period = SelectField("Budget period", choices=options((p, p.capitalize()) for p in PERIODS),
                                default="month",
                                description="UTC calendar periods (weeks start on Monday).")
    budget_soft_pct = IntegerField("Warn at (% of budget)", [Optional(), NumberRange(1, 100)],
                                   default=80,
                                   description="Flagged on the overview past this share.")


# --- auth ----------------------------------------------------------------------------------------


class LoginForm(FlaskForm):
    username = StringField("Username", [DataRequired(), Length(max=80)],
                           render_kw={"autocomplete": "username", "autofocus": True})
    password = PasswordField("Password", [DataRequired(), Length(max=200)],
                             render_kw={"autocomplete": "current-password"})


# --- providers -----------------------------------------------------------------------------------

TRUST_HELP = {
    "local": "Local: runs on this host or LAN; prompts never leave your network",
    "private": "Private: a contracted/private deployment (e.g. Azure, Bedrock in your account)",
    "public": "Public: a public cloud API",
}

FIELD_TEXT = {  # label, help for per-type fields; unknown names fall back to a readable label
    "api_key": ("API key", None),
    "aws_access_key_id": ("AWS access key ID", None),
    "aws_secret_access_key": ("AWS secret access key", None),
    "aws_session_token": ("AWS session token", "Only for temporary (STS) credentials."),
    "api_version": ("API version", "Azure OpenAI REST API version, e.g. 2024-10-21."),
    "deployment": ("Chat deployment", "Default Azure deployment for chat completions."),
    "embeddings_deployment": ("Embeddings deployment", "Azure deployment used for embeddings."),
    "resource": ("Resource name", "The Azure resource, i.e. https://<resource>.openai.azure.com."),
    "region": ("AWS region", "e.g. us-east-1"),
    "anthropic_version": ("anthropic-version header", "Defaults to the adapter's pinned version."),
    "anthropic_beta": ("anthropic-beta header", "Comma-separated beta flags (optional)."),
    "organization": ("Organization ID", "Sent as OpenAI-Organization (optional)."),
    "project": ("Project ID", "Sent as OpenAI-Project (optional)."),
    "responses_api": ("Responses API natively", "true: /v1/responses is passed through to this "
                      "provider's own Responses API; false: translated to chat completions. "
                      "Blank = the type's default (on for OpenAI, Azure, xAI)."),
    "keep_alive": ("Keep alive", "How long Ollama keeps the model loaded, e.g. 5m (optional)."),
}


def field_text(name: str) -> tuple[str, str | None]:
    return FIELD_TEXT.get(name, (name.replace("_", " ").capitalize(), None))


class ProviderForm(LimitFields, FlaskForm):
    """Fields every provider type has; `provider_form()` adds the type's own fields."""

    name = StringField("Name", [DataRequired(), Length(max=120)],
                       description="Shown in the console and in routing logs; must be unique.")
    type = SelectField("Type", choices=[])
    api_base = StringField("API base URL", [Optional(), Length(max=500)],
                           render_kw={"placeholder": "https://api.example.com/v1"})
    trust_level = SelectField("Trust level", choices=options((t, TRUST_HELP[t]) for t in TRUST_LEVELS),
                              default="public")
    connect_timeout = FloatField("Connect timeout (s)", [Optional(), NumberRange(0.1, 600)],
                                 default=5.0)
    read_timeout = FloatField("Read timeout (s)", [Optional(), NumberRange(0.1, 3600)], default=60.0)
    default_temperature = DecimalField("Default temperature", [Optional(), NumberRange(0, 2)],
                                       places=None,
                                       description="Used when a request sets none. Blank = upstream default.")
    default_max_tokens = IntegerField("Default max tokens", [Optional(), NumberRange(1, 10_000_000)],
                                      description="Used when a request sets none.")
    enabled = BooleanField("Enabled", default=True)
    clear_secret = BooleanField("Remove the stored credentials")

    config_names: tuple[str, ...] = ()
    secret_names: tuple[str, ...] = ()
    optional_secrets: tuple[str, ...] = ()

    def payload(self, existing_config: dict | None = None) -> dict:
        """The dict `services.providers.create/update` take; blank secrets mean "keep"."""
        data = {f: _number(self[f].data) for f in (
            "name", "type", "api_base", "trust_level", "connect_timeout", "read_timeout",
            "default_temperature", "default_max_tokens", "enabled")}
        data["limits"] = self.limits_payload()
        config = {k: v for k, v in (existing_config or {}).items()
                  if k not in self.config_names and k != "preset"}
        config.update({n: self[n].data.strip() for n in self.config_names if (self[n].data or "").strip()})
        data["config"] = config
        if "api_version" in self._fields:
            data["api_version"] = self.api_version.data
        for name in self.secret_names:
            if self[name].data:
                data[name] = self[name].data
        if self.clear_secret.data:
            data["clear_secret"] = True
        return data


def provider_form(type_choices: dict, adapter, *, with_api_version: bool,
                  optional_secrets: tuple[str, ...] | None = None, **kwargs) -> ProviderForm:
    """A ProviderForm carrying `adapter`'s config and secret fields (None: common fields only)."""
    attrs: dict = {}
    config_names = tuple(n for n in getattr(adapter, "config_fields", ())
                         if n not in ProviderForm.__dict__ and n != "api_version")
    secret_names = tuple(getattr(adapter, "secret_fields", ()))
    if with_api_version:
        label, help_ = field_text("api_version")
        attrs["api_version"] = StringField(label, [Optional(), Length(max=40)], description=help_)
    for name in config_names:
        label, help_ = field_text(name)
        attrs[name] = StringField(label, [Optional(), Length(max=500)], description=help_)
    for name in secret_names:
        label, help_ = field_text(name)
        attrs[name] = PasswordField(label, [Optional(), Length(max=4096)], description=help_,
                                    render_kw={"autocomplete": "new-password"})
    form_class = type("TypedProviderForm", (ProviderForm,), attrs)
    form = form_class(**kwargs)
    form.type.choices = grouped_options(type_choices)
    form.config_names = config_names
    form.secret_names = secret_names
    form.optional_secrets = optional_secrets if optional_secrets is not None else \
        tuple(getattr(adapter, "optional_secret_fields", ()))
    return form


# --- models --------------------------------------------------------------------------------------

CAPABILITIES = (("supports_streaming", "Streaming"), ("supports_tools", "Tools / function calling"),
                ("supports_vision", "Vision (image input)"), ("supports_json", "JSON mode"))


class ModelForm(LimitFields, FlaskForm):
    provider_id = SelectField("Provider", coerce=int, choices=[])
    model_id = StringField("Upstream model ID", [DataRequired(), Length(max=200)],
                           description="Exactly as the provider names it, e.g. gpt-4o-mini.")
    name = StringField("Public name (alias)", [Optional(), Length(max=200)],
                       description="What clients send as \"model\". Blank = the upstream ID.")
    kind = SelectField("Kind", choices=options((k, k.capitalize()) for k in KINDS), default="chat")
    supports_streaming = BooleanField("Streaming", default=True)
    supports_tools = BooleanField("Tools / function calling")
    supports_vision = BooleanField("Vision (image input)")
    supports_json = BooleanField("JSON mode")
    context_window = IntegerField("Context window (tokens)", [Optional(), NumberRange(1, 100_000_000)])
    max_output_tokens = IntegerField("Max output tokens", [Optional(), NumberRange(1, 100_000_000)])
    input_price_per_mtok = DecimalField("Input $ / 1M tokens", [Optional(), NumberRange(0, 100000)],
                                        places=None)
    output_price_per_mtok = DecimalField("Output $ / 1M tokens", [Optional(), NumberRange(0, 100000)],
                                         places=None)
    cached_input_price_per_mtok = DecimalField("Cached input $ / 1M tokens",
                                               [Optional(), NumberRange(0, 100000)], places=None,
                                               description="Blank = same as input.")
    priority = IntegerField("Priority", [Optional(), NumberRange(-1000, 1000)], default=0,
                            description="Lower is tried first when several models share a name.")
    weight = IntegerField("Weight", [Optional(), NumberRange(0, 1000)], default=1,
                          description="Load-balancing share among equal priorities.")
    enabled = BooleanField("Enabled", default=True)
    deprecated = BooleanField("Deprecated", description="Still served, flagged in listings.")

    def validate_provider_id(self, field):
        if field.data is None:
            raise ValidationError("Choose a provider.")

    def payload(self) -> dict:
        names = ("provider_id", "model_id", "name", "kind", "context_window", "max_output_tokens",
                 "input_price_per_mtok", "output_price_per_mtok", "cached_input_price_per_mtok",
                 "priority", "weight", "enabled", "deprecated") + tuple(c for c, _ in CAPABILITIES)
        return {**{n: _number(self[n].data) for n in names}, "limits": self.limits_payload()}


# --- keys ----------------------------------------------------------------------------------------

SCOPE_HELP = {"chat": "chat — /v1/chat/completions, /v1/responses", "embeddings": "embeddings — /v1/embeddings",
              "models": "models — /v1/models", "admin": "admin — the JSON admin API",
              "admin:operator": "admin:operator — the admin API as an operator (no settings/teams changes)",
              "admin:read": "admin:read — the admin API read-only"}


class KeyForm(LimitFields, BudgetFields, FlaskForm):
    name = StringField("Name", [DataRequired(), Length(max=120)],
                       description="What the key is for, e.g. \"billing-service prod\".")
    owner = StringField("Owner / team", [Optional(), Length(max=120)],
                        description="A person or team. Keys owned by a team's name share its budget.")
    scopes = MultiCheckboxField("Scopes", choices=options((s, SCOPE_HELP.get(s, s)) for s in SCOPES),
                                default=["chat", "embeddings", "models"])
    allowed_models = TextAreaField("Allowed models", [Optional(), Length(max=20000)],
                                   description="Comma or newline separated public names. Blank = all models.",
                                   render_kw={"rows": 3})
    expires_at = DateField("Expires on", [Optional()],
                           description="UTC date; the key stops working at 00:00 UTC that day. Blank = never.")
    enabled = BooleanField("Enabled", default=True)
    allowed_ips = TextAreaField("Allowed client IPs", [Optional(), Length(max=20000)],
                                description="IPs or CIDRs, comma or newline separated. Blank = any.",
                                render_kw={"rows": 2})

    creating = False

    def validate_expires_at(self, field):
        if self.creating and field.data is not None and field.data <= datetime.now(timezone.utc).date():
            raise ValidationError("Choose a date after today.")

    def payload(self) -> dict:
        expires = self.expires_at.data
        data = {
            "name": self.name.data, "owner": self.owner.data, "scopes": list(self.scopes.data or []),
            "allowed_models": self.allowed_models.data or "",
            "allowed_ips": self.allowed_ips.data or "",
            "expires_at": datetime.combine(expires, time()).isoformat() + "Z" if expires else None,
            "limits": self.limits_payload(),
            "budget": budget_payload(self),
        }
        if not self.creating:
            data["enabled"] = self.enabled.data
        return data

    @classmethod
    def initial(cls, key) -> dict:
        """Form data for editing an existing key."""
        return {
            "name": key.name, "owner": key.owner, "scopes": key.scopes or [],
            "allowed_models": "\n".join(key.allowed_models or []),
            "allowed_ips": "\n".join(key.allowed_ips or []),
            "expires_at": key.expires_at.date() if key.expires_at else None,
            "enabled": key.enabled, **cls.limits_initial(key.limits), **budget_initial(key.budget),
        }


KEY_ALIASES = {"budget": "budget_amount"}


# --- teams ---------------------------------------------------------------------------------------


class TeamForm(BudgetFields, FlaskForm):
    name = StringField("Name", [DataRequired(), Length(max=120)],
                       description="Keys whose owner is exactly this name belong to the team. "
                                   "Renaming the team renames its keys' owner and its team "
                                   "admins' team with it.")
    description = TextAreaField("Description", [Optional(), Length(max=500)], render_kw={"rows": 2})

    def payload(self) -> dict:
        return {"name": self.name.data, "description": self.description.data or "",
                "budget": budget_payload(self)}

    @classmethod
    def initial(cls, team) -> dict:
        return {"name": team.name, "description": team.description, **budget_initial(team.budget)}


TEAM_ALIASES = {"budget": "budget_amount"}


# --- users ---------------------------------------------------------------------------------------

ROLE_HELP = (("viewer", "Viewer — reads the console, changes nothing"),
             ("operator", "Operator — providers, models, routing, keys, health, cache"),
             ("team_admin", "Team admin — keys and usage of their own team(s)"),
             ("admin", "Admin — everything, including users, settings and teams"))


class UserFields:
    """Role, teams and e-mail: what both the new-user and the edit form change."""

    role = SelectField("Role", choices=options(ROLE_HELP), default="viewer")
    teams = MultiCheckboxField("Teams", choices=[],
                               description="Team admins manage the keys and usage of these teams.")
    email = StringField("E-mail", [Optional(), Length(max=255)],
                        render_kw={"autocomplete": "off", "spellcheck": "false",
                                   "inputmode": "email"})

    def set_team_choices(self, names) -> None:
        self.teams.choices = options((n, n) for n in names)

    def fields_payload(self) -> dict:
        role = self.role.data
        return {"role": role, "teams": list(self.teams.data or []) if role == "team_admin" else [],
                "email": (self.email.data or "").strip() or None}


class NewUserForm(UserFields, FlaskForm):
    username = StringField("Username", [DataRequired(), Length(max=80)],
                           description="Letters, digits and . _ @ + -. It cannot be changed later.",
                           render_kw={"autocomplete": "off", "autocapitalize": "none",
                                      "spellcheck": "false"})
    password = PasswordField("Password", [Optional(), Length(max=200)],
                             description="Leave blank to generate a strong password, shown once on "
                                         "the next page. At least 8 characters.",
                             render_kw={"autocomplete": "new-password"})

    def payload(self) -> dict:
        return {"username": (self.username.data or "").strip(), **self.fields_payload(),
                "password": self.password.data or None}


class EditUserForm(UserFields, FlaskForm):
    password = PasswordField("New password", [Optional(), Length(max=200)],
                             description="Blank keeps the current password. At least 8 characters.",
                             render_kw={"autocomplete": "new-password"})
    generate_password = BooleanField("Generate a new password",
                                     description="Shown once on the next page.")

    def payload(self, user) -> dict:
        data = self.fields_payload()
        if not user.is_sso:  # no password fields are shown for single-sign-on accounts
            if self.password.data:
                data["password"] = self.password.data
            if self.generate_password.data:
                data["generate_password"] = True
        return data

    @classmethod
    def initial(cls, user) -> dict:
        return {"role": user.role, "teams": list(user.teams or []) if user.role == "team_admin" else [],
                "email": user.email}
