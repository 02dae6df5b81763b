"""Campaign definitions: YAML files in ``campaigns/`` an operator reads and edits.

A definition is validated completely before anything is planned or sent: every problem is
reported as ``<file>: <field>: <reason>`` (``CampaignDefinitionError``), the reason in the
operator's language (zh-CN/en, ``tasks.campaigns.texts``; the file and field as written).
What a file says:

    name: awakening                     # a-z, 0-9, '-' (used in keys and artifact names)
    title: {zh-CN: 沉睡唤醒, en: Awakening}
    enabled: true
    priority: 30                        # higher plans first (and so gets the global cap first)
    entry: [nightly]                    # nightly | {on: stage_change, to: [silent]} | {on: event, event: ...}
    audience:                           # a rule over tags/stages/scores ...
      rule: {lifecycle_stage: [silent]}
      # ... or a read-only query returning customer_id:  sql: SELECT customer_id FROM tags WHERE ...
    channel: sms                        # email | sms | push | staff
    period: month                       # one touch per customer per day|week|month|quarter|once
    holdout_share: 0.1                  # default: settings.campaigns.holdout_share
    frequency_cap: {messages: 1, days: 30}   # per campaign; the global cap applies on top
    quiet_hours: {start: "21:00", end: "09:00", timezone: customer}
    budget: {amount: 20000, per: month} # gift/coupon spend cap
    gift: {cost: 10, text: {zh-CN: 10元无门槛券, en: a 10 yuan voucher}}
    variants:                           # A/B variants, Jinja2, zh-CN and en
      - name: A
        weight: 1
        subject: {zh-CN: ..., en: ...}  # required for email
        body: {zh-CN: "{{ name }},...", en: "..."}
    segments:                           # optional treatment per sub-group, first match wins
      - name: vip
        when: {value_tier: [high]}
        channel: staff
        gift: {...}
        variants: [...]

Templates see group values (``campaign``, ``title``, ``locale``, ``channel``, ``stage``,
``value_tier``, ``segment``, ``variant``, ``gift``, ``gift_cost``, ``shop``,
``unsubscribe``) and personal values that are printed as they are (``name``,
``days_since_last_order``, ``ltv``, ``favourite_category``, ``last_order_date``,
``unsubscribe_url``). The unsubscribe text is appended to every marketing message whose
template does not place ``{{ unsubscribe }}`` itself.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import jinja2
import jinja2.meta
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tasks.campaigns import texts  # noqa: F401  (registers the problems' words)
from userops.i18n import join_list, labelled, t
from userops.settings import get_settings

STAGES = ("prospect", "new", "active", "loyal", "silent", "churned")
CHANNELS = ("email", "sms", "push", "staff")
Stage = Literal["prospect", "new", "active", "loyal", "silent", "churned"]
Tier = Literal["high", "mid", "low"]
Band = Literal["high", "medium", "low"]
Channel = Literal["email", "sms", "push", "staff"]
SILENT_SHARE_EVENT = "userops.health.silent-share-high"

# Template variables: personal ones are substituted per customer after the group render.
PERSONAL_FIELDS = ("name", "days_since_last_order", "ltv", "favourite_category", "last_order_date", "unsubscribe_url")
GROUP_FIELDS = ("campaign", "title", "locale", "channel", "stage", "value_tier", "segment", "variant", "gift", "gift_cost", "shop", "unsubscribe")
TEMPLATE_FIELDS = frozenset(PERSONAL_FIELDS + GROUP_FIELDS)
RESERVED_NAMES = {"calendar"}  # artifact key campaign-calendar

JINJA = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)


class DefinitionProblem(ValueError):
    """One rule a definition breaks, as a text key and its values: ``str()`` English (logs,
    tracebacks), ``text(lang)`` the operator's language. Raised by the field checks (pydantic
    keeps it as the error's context) and by ``check_select_only``."""

    def __init__(self, key: str, **values):
        self.key, self.values = key, values  # a list value is joined in the language's way
        super().__init__(self.text("en"))

    def text(self, lang: str | None = None) -> str:
        return t(self.key, lang, **{k: join_list(v, lang) if isinstance(v, list) else v for k, v in self.values.items()})

    def __reduce__(self):
        return (_rebuild_problem, (self.key, self.values))


def _rebuild_problem(key: str, values: dict) -> DefinitionProblem:
    return DefinitionProblem(key, **values)


class CampaignDefinitionError(ValueError):
    """One or more campaign files are invalid; ``problems`` is a list of (file, field, reason),
    the reasons in ``lang`` (default: the settings' language), as is the message."""

    def __init__(self, problems: list[tuple[str, str, str]], lang: str | None = None):
        self.problems = problems
        self.lang = lang
        lines = [labelled(f, labelled(fld, why, lang), lang) if fld else labelled(f, why, lang) for f, fld, why in problems]
        super().__init__(t("campaign.def.invalid", lang) + "\n  " + "\n  ".join(lines))

    def __reduce__(self):
        return (type(self), (self.problems, self.lang))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Localized(_Model):
    zh_CN: str = Field(alias="zh-CN", min_length=1)
    en: str = Field(min_length=1)

    def get(self, locale: str) -> str:
        return self.zh_CN if locale == "zh-CN" else self.en


class Rule(_Model):
    """All conditions must hold (AND); ``any_of`` holds when one of its rules does."""

    lifecycle_stage: list[Stage] | None = None
    value_tier: list[Tier] | None = None
    rfm_segment: list[str] | None = None
    risk_band: list[Band] | None = None  # the champion model's score band
    min_churn_probability: float | None = Field(None, ge=0, le=1)
    max_churn_probability: float | None = Field(None, ge=0, le=1)
    at_risk: bool | None = None
    min_ltv: float | None = None
    max_ltv: float | None = None
    min_days_since_last_order: int | None = Field(None, ge=0)
    max_days_since_last_order: int | None = Field(None, ge=0)
    min_paid_orders: int | None = Field(None, ge=0)
    price_sensitive: bool | None = None
    member_level: list[str] | None = None
    favourite_category: list[str] | None = None
    any_of: list["Rule"] | None = None

    @model_validator(mode="after")
    def _not_empty_lists(self):
        for name in ("lifecycle_stage", "value_tier", "rfm_segment", "risk_band", "member_level", "favourite_category", "any_of"):
            v = getattr(self, name)
            if v is not None and len(v) == 0:
                raise DefinitionProblem("campaign.def.empty_list", field=name)
        return self


_SQL_FORBIDDEN = re.compile(
    r"\b(insert|update|delete|drop|alter|create|truncate|grant|revoke|attach|detach|pragma|copy|vacuum|"
    r"replace|merge|call|execute|exec|do|lock|reindex|analyze|set|reset|begin|commit|rollback|savepoint|"
    r"into|pg_sleep|pg_read_file|pg_terminate_backend|lo_import|lo_export|dblink)\b",
    re.IGNORECASE,
)


def check_select_only(sql: str) -> str:
    """Accept exactly one read-only SELECT (optionally WITH ... SELECT); raise
    ``DefinitionProblem`` (a ValueError) otherwise."""
    text = re.sub(r"--[^\n]*", " ", sql)
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    bare = re.sub(r"'(?:[^']|'')*'", "''", text)  # string literals cannot hide keywords
    bare = re.sub(r'"(?:[^"]|"")*"', '""', bare)
    stmt = bare.strip().rstrip(";").strip()
    if not stmt:
        raise DefinitionProblem("campaign.def.sql.empty")
    if ";" in stmt:
        raise DefinitionProblem("campaign.def.sql.several")
    first = stmt.split(None, 1)[0].lower()
    if first not in ("select", "with"):
        raise DefinitionProblem("campaign.def.sql.starts_with", word=first.upper())
    bad = _SQL_FORBIDDEN.search(stmt)
    if bad:
        raise DefinitionProblem("campaign.def.sql.forbidden", word=bad.group(1).upper())
    if not re.search(r"\bselect\b", stmt, re.IGNORECASE):
        raise DefinitionProblem("campaign.def.sql.with_select")
    return text.strip().rstrip(";").strip()


class Audience(_Model):
    rule: Rule | None = None
    sql: str | None = None  # read-only; must return a customer_id column

    @field_validator("sql")
    @classmethod
    def _select_only(cls, v):
        return None if v is None else check_select_only(v)

    @model_validator(mode="after")
    def _one_of(self):
        if (self.rule is None) == (self.sql is None):
            raise DefinitionProblem("campaign.def.audience_one_of")
        return self


class Entry(_Model):
    on: Literal["nightly", "stage_change", "event"]
    to: list[Stage] | None = None  # stage_change: the new stage(s)
    from_: list[Stage] | None = Field(None, alias="from")  # stage_change: the previous stage(s), optional
    within_days: int = Field(1, ge=1, le=60)  # stage_change: changes in the last N days count
    event: str | None = None  # event: the Prefect event name
    audience: Audience | None = None  # event: audience used when started by this event

    @model_validator(mode="after")
    def _shape(self):
        if self.on == "stage_change" and not self.to:
            raise DefinitionProblem("campaign.def.entry.to")
        if self.on == "event" and not self.event:
            raise DefinitionProblem("campaign.def.entry.event", example=SILENT_SHARE_EVENT)
        if self.on != "event" and self.audience is not None:
            raise DefinitionProblem("campaign.def.entry.audience")
        return self


class Cap(_Model):
    messages: int = Field(ge=1)
    days: int = Field(ge=1, le=365)


_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class QuietHours(_Model):
    start: str = "21:00"
    end: str = "09:00"
    timezone: Literal["customer", "shop"] = "customer"

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v):
        if not _HHMM.match(v):
            raise DefinitionProblem("campaign.def.time_of_day", value=repr(v))
        return v


class Budget(_Model):
    amount: float = Field(ge=0)
    per: Literal["run", "period", "month", "total"] = "month"


class Gift(_Model):
    cost: float = Field(0, ge=0)
    text: Localized | None = None


class Variant(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,12}$")
    weight: float = Field(1.0, gt=0)
    subject: Localized | None = None
    body: Localized
    gift: Gift | None = None  # e.g. A/B test "useful content" against "small benefit"


class Segment(_Model):
    name: str = Field(pattern=r"^[a-z0-9_-]{1,12}$")
    when: Rule
    channel: Channel | None = None
    gift: Gift | None = None
    variants: list[Variant] | None = None


def _entries(v: Any) -> Any:
    if v is None:
        return [{"on": "nightly"}]
    if isinstance(v, (str, dict)):
        v = [v]
    out = []
    for e in v:
        if isinstance(e, dict):  # YAML 1.1 reads a bare `on:` key as the boolean true
            e = {("on" if k is True else k): val for k, val in e.items()}
        out.append({"on": e} if isinstance(e, str) else e)
    return out


class Campaign(_Model):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{1,39}$")
    title: Localized
    description: Localized | None = None
    enabled: bool = True
    priority: int = 50
    entry: list[Entry] = Field(default_factory=lambda: [Entry(on="nightly")])
    audience: Audience
    channel: Channel
    marketing: bool = True
    period: Literal["day", "week", "month", "quarter", "once"] = "week"
    holdout_share: float | None = Field(None, ge=0, le=0.9)
    frequency_cap: Cap | None = None
    quiet_hours: QuietHours | None = None
    budget: Budget | None = None
    gift: Gift | None = None
    locale: Literal["auto", "zh-CN", "en"] = "auto"
    budget_order: Literal["churn_probability", "ltv"] = "churn_probability"
    variants: Annotated[list[Variant], Field(min_length=1)]
    segments: list[Segment] = []
    source: str | None = Field(None, exclude=True)  # the file it came from

    @field_validator("entry", mode="before")
    @classmethod
    def _entry_shorthand(cls, v):
        return _entries(v)

    @field_validator("name")
    @classmethod
    def _reserved(cls, v):
        if v in RESERVED_NAMES:
            raise DefinitionProblem("campaign.def.reserved", name=repr(v))
        return v

    @model_validator(mode="after")
    def _consistency(self):
        _unique([v.name for v in self.variants], "campaign.def.unique.variants")
        _unique([s.name for s in self.segments], "campaign.def.unique.segments")
        for s in self.segments:
            if s.variants:
                _unique([v.name for v in s.variants], "campaign.def.unique.segment_variants", segment=s.name)
            ch = s.channel or self.channel
            if ch == "email" and any(v.subject is None for v in (s.variants or self.variants)):
                raise DefinitionProblem("campaign.def.segment_subject", segment=s.name)
        if self.channel == "email" and any(v.subject is None for v in self.variants):
            raise DefinitionProblem("campaign.def.email_subject")
        if self.budget is not None and not any(self.gift_for(v, g).cost for _s, _r, _c, g, vs in self.treatments() for v in vs if self.gift_for(v, g)):
            raise DefinitionProblem("campaign.def.budget_without_gift")
        return self

    # ------------------------------------------------------------------ helpers
    def entries(self, kind: str) -> list[Entry]:
        return [e for e in self.entry if e.on == kind]

    def runs_nightly(self) -> bool:
        return bool(self.entries("nightly") or self.entries("stage_change"))

    def listens_to(self, event: str) -> bool:
        return any(e.event == event for e in self.entries("event"))

    @property
    def holdout(self) -> float:
        return get_settings().campaigns.holdout_share if self.holdout_share is None else self.holdout_share

    @property
    def quiet(self) -> QuietHours:
        if self.quiet_hours is not None:
            return self.quiet_hours
        cs = get_settings().campaigns
        return QuietHours(start=cs.quiet_start, end=cs.quiet_end)

    @staticmethod
    def gift_for(variant: Variant, gift: Gift | None) -> Gift | None:
        """A variant's own gift wins over its segment's (or the campaign's)."""
        return variant.gift or gift

    def treatments(self) -> list[tuple[str, Rule | None, str, Gift | None, list[Variant]]]:
        """(segment, rule, channel, gift, variants): the segments first, then the default."""
        out = [(s.name, s.when, s.channel or self.channel, s.gift or self.gift, s.variants or self.variants) for s in self.segments]
        out.append(("default", None, self.channel, self.gift, self.variants))
        return out


def _unique(names: list[str], key: str, **values) -> None:
    seen = {n for n in names if names.count(n) > 1}
    if seen:
        raise DefinitionProblem(key, names=sorted(seen), **values)


# --------------------------------------------------------------------------- templates
SENTINEL = "\x00{}\x00"
_SENTINEL_RE = re.compile("\x00([a-z_]+)\x00")


def template_sources(c: Campaign) -> list[tuple[str, str]]:
    """(field path, template text) for every template of a campaign."""
    out = []
    for vi, v in enumerate(c.variants):
        for loc in ("zh-CN", "en"):
            if v.subject:
                out.append((f"variants[{vi}].subject.{loc}", v.subject.get(loc)))
            out.append((f"variants[{vi}].body.{loc}", v.body.get(loc)))
    for si, s in enumerate(c.segments):
        for vi, v in enumerate(s.variants or []):
            for loc in ("zh-CN", "en"):
                if v.subject:
                    out.append((f"segments[{si}].variants[{vi}].subject.{loc}", v.subject.get(loc)))
                out.append((f"segments[{si}].variants[{vi}].body.{loc}", v.body.get(loc)))
    gifts = [("gift.text", c.gift)] + [(f"segments[{i}].gift.text", s.gift) for i, s in enumerate(c.segments)]
    gifts += [(f"variants[{i}].gift.text", v.gift) for i, v in enumerate(c.variants)]
    gifts += [(f"segments[{i}].variants[{j}].gift.text", v.gift) for i, s in enumerate(c.segments) for j, v in enumerate(s.variants or [])]
    for path, gift in gifts:
        if gift and gift.text:
            for loc in ("zh-CN", "en"):
                out.append((f"{path}.{loc}", gift.text.get(loc)))
    return out


def check_template(src: str, lang: str | None = None) -> str | None:
    """The reason a template is unusable (in ``lang``, default the settings' language), or None."""
    try:
        ast = JINJA.parse(src)
    except jinja2.TemplateSyntaxError as exc:
        return t("campaign.def.template.syntax", lang, line=exc.lineno, error=exc.message)
    unknown = sorted(jinja2.meta.find_undeclared_variables(ast) - TEMPLATE_FIELDS)
    if unknown:
        return t("campaign.def.template.unknown", lang, names=join_list(unknown, lang), known=join_list(sorted(TEMPLATE_FIELDS), lang))
    ctx: dict[str, Any] = {f: SENTINEL.format(f) for f in PERSONAL_FIELDS}
    ctx.update({f: "x" for f in GROUP_FIELDS})
    ctx.update(gift_cost=10.0, stage="active", value_tier="high", locale="zh-CN", channel="sms")
    try:
        text = JINJA.from_string(src).render(**ctx)
    except Exception as exc:  # a filter or arithmetic on a personal value
        return t("campaign.def.template.render", lang, error=exc, fields=join_list(PERSONAL_FIELDS, lang))
    stripped = _SENTINEL_RE.sub("", text)
    if "\x00" in stripped:
        return t("campaign.def.template.filter", lang, fields=join_list(PERSONAL_FIELDS, lang))
    return None


# --------------------------------------------------------------------------- loading
def _field_path(loc: tuple) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts[-1:] = [f"{parts[-1]}[{p}]" if parts else f"[{p}]"]
        elif p in ("function-after[_consistency()]", "function-after[_shape()]", "function-after[_one_of()]", "function-after[_not_empty_lists()]"):
            continue
        else:
            parts.append(str(p))
    return ".".join(parts)


# pydantic's own checks, said in the operator's language (other kinds: pydantic's English text)
_PYDANTIC_TEXTS = {
    "missing": "missing", "extra_forbidden": "extra", "literal_error": "literal", "enum": "literal",
    "string_pattern_mismatch": "pattern", "string_too_short": "string_too_short", "string_too_long": "string_too_long",
    "too_short": "too_short", "too_long": "too_long",
    "greater_than": "gt", "greater_than_equal": "ge", "less_than": "lt", "less_than_equal": "le",
    "int_parsing": "int", "int_type": "int", "int_from_float": "int", "float_parsing": "number", "float_type": "number",
    "bool_parsing": "bool", "bool_type": "bool", "string_type": "string", "list_type": "list",
    "dict_type": "mapping", "model_type": "mapping", "model_attributes_type": "mapping",
}


def _value(v: Any) -> Any:
    return f"{v:g}" if isinstance(v, float) else v


def _reason(err: dict, lang: str | None) -> str:
    """One pydantic error as the operator's text."""
    ctx = err.get("ctx") or {}
    if isinstance(ctx.get("error"), DefinitionProblem):
        return ctx["error"].text(lang)
    kind = _PYDANTIC_TEXTS.get(err["type"])
    if kind is None:
        return t("campaign.def.pydantic.other", lang, msg=err["msg"].removeprefix("Value error, "))
    values = {k: _value(v) for k, v in ctx.items()}
    if "expected" in values:  # "'a', 'b' or 'c'" -> "'a', 'b', 'c'"
        values["expected"] = str(values["expected"]).replace(" or ", ", ")
    return t("campaign.def.pydantic." + kind, lang, **values)


def parse_campaign(data: Any, source: str, lang: str | None = None) -> tuple[Campaign | None, list[tuple[str, str, str]]]:
    """Validate one definition; returns (campaign or None, problems), the reasons in ``lang``
    (default: the settings' language)."""
    if not isinstance(data, dict):
        return None, [(source, "", t("campaign.def.not_mapping", lang))]
    try:
        c = Campaign.model_validate({**data, "source": source})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            problems.append((source, _field_path(err["loc"]) or "(campaign)", _reason(err, lang)))
        return None, problems
    problems = []
    for path, src in template_sources(c):
        why = check_template(src, lang)
        if why:
            problems.append((source, path, why))
    return (None if problems else c), problems


def load_campaigns(directory: Path | str | None = None, *, include_disabled: bool = True, lang: str | None = None) -> list[Campaign]:
    """Every ``*.yaml``/``*.yml`` in the campaigns directory, validated; raises
    ``CampaignDefinitionError`` naming file, field and reason for every problem (reasons in
    ``lang``, default the settings' language)."""
    directory = Path(directory or get_settings().campaigns.definitions_dir)
    if not directory.is_dir():
        raise CampaignDefinitionError([(str(directory), "", t("campaign.def.no_directory", lang))], lang)
    problems: list[tuple[str, str, str]] = []
    campaigns: list[Campaign] = []
    for path in sorted(list(directory.glob("*.yaml")) + list(directory.glob("*.yml"))):
        source = path.name
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = t("campaign.def.line", lang, line=mark.line + 1) if mark else ""
            problems.append((source, where, t("campaign.def.yaml", lang, error=getattr(exc, "problem", None) or exc)))
            continue
        c, errs = parse_campaign(data, source, lang)
        problems.extend(errs)
        if c is not None:
            campaigns.append(c)
    names: dict[str, str] = {}
    for c in campaigns:
        if c.name in names:
            problems.append((c.source or "?", "name", t("campaign.def.duplicate", lang, name=repr(c.name), other=names[c.name])))
        names[c.name] = c.source or "?"
    if problems:
        raise CampaignDefinitionError(problems, lang)
    campaigns.sort(key=lambda c: (-c.priority, c.name))
    return [c for c in campaigns if include_disabled or c.enabled]


def get_campaign(name: str, directory: Path | str | None = None) -> Campaign:
    for c in load_campaigns(directory):
        if c.name == name:
            return c
    known = join_list(c.name for c in load_campaigns(directory))
    raise KeyError(t("campaign.def.unknown", name=repr(name), defined=known or "—"))


def period_key(kind: str, day) -> str:
    """The idempotency period of a campaign touch for a business day."""
    if kind == "day":
        return day.isoformat()
    if kind == "week":
        y, w, _ = day.isocalendar()
        return f"{y}-W{w:02d}"
    if kind == "month":
        return f"{day.year}-{day.month:02d}"
    if kind == "quarter":
        return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    return "once"


# --------------------------------------------------------------------------- Prefect tasks
from prefect import task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402


@task(name="load-campaign-definitions", cache_policy=NO_CACHE)
def load_campaigns_task() -> list[Campaign]:
    """Every definition, validated; an invalid one fails the run before anything is sent."""
    return load_campaigns()
