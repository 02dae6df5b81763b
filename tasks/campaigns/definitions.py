"""Campaign definitions: YAML files in ``campaigns/`` an operator reads and edits.

A definition is validated completely before anything is planned or sent: every problem is
reported as ``<file>: <field>: <reason>`` (``CampaignDefinitionError``). What a file says:

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


class CampaignDefinitionError(ValueError):
    """One or more campaign files are invalid; ``problems`` is a list of (file, field, reason)."""

    def __init__(self, problems: list[tuple[str, str, str]]):
        self.problems = problems
        lines = [f"{f}: {fld}: {why}" if fld else f"{f}: {why}" for f, fld, why in problems]
        super().__init__("invalid campaign definition(s):\n  " + "\n  ".join(lines))


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
                raise ValueError(f"{name}: an empty list matches nobody; leave it out to match everyone")
        return self


_SQL_FORBIDDEN = re.compile(
    r"\b(insert|update|delete|drop|alter|create|truncate|grant|revoke|attach|detach|pragma|copy|vacuum|"
    r"replace|merge|call|execute|exec|do|lock|reindex|analyze|set|reset|begin|commit|rollback|savepoint|"
    r"into|pg_sleep|pg_read_file|pg_terminate_backend|lo_import|lo_export|dblink)\b",
    re.IGNORECASE,
)


def check_select_only(sql: str) -> str:
    """Accept exactly one read-only SELECT (optionally WITH ... SELECT); raise ValueError otherwise."""
    text = re.sub(r"--[^\n]*", " ", sql)
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    bare = re.sub(r"'(?:[^']|'')*'", "''", text)  # string literals cannot hide keywords
    bare = re.sub(r'"(?:[^"]|"")*"', '""', bare)
    stmt = bare.strip().rstrip(";").strip()
    if not stmt:
        raise ValueError("the query is empty")
    if ";" in stmt:
        raise ValueError("only a single SELECT statement is allowed (found more than one statement)")
    first = stmt.split(None, 1)[0].lower()
    if first not in ("select", "with"):
        raise ValueError(f"only a read-only SELECT is allowed (the query starts with {first.upper()})")
    bad = _SQL_FORBIDDEN.search(stmt)
    if bad:
        raise ValueError(f"only a read-only SELECT is allowed (found {bad.group(1).upper()})")
    if not re.search(r"\bselect\b", stmt, re.IGNORECASE):
        raise ValueError("a WITH query must end in a SELECT")
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
            raise ValueError("give exactly one of 'rule' (over tags, stages and scores) or 'sql' (a read-only SELECT)")
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
            raise ValueError("a stage_change entry needs 'to' (the stage(s) entered)")
        if self.on == "event" and not self.event:
            raise ValueError("an event entry needs 'event' (e.g. userops.health.silent-share-high)")
        if self.on != "event" and self.audience is not None:
            raise ValueError("'audience' on an entry is only for event entries")
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
            raise ValueError(f"{v!r} is not a time of day like 21:00")
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
            raise ValueError(f"{v!r} is reserved")
        return v

    @model_validator(mode="after")
    def _consistency(self):
        _unique([v.name for v in self.variants], "variant names")
        _unique([s.name for s in self.segments], "segment names")
        for s in self.segments:
            if s.variants:
                _unique([v.name for v in s.variants], f"variant names of segment {s.name}")
            ch = s.channel or self.channel
            if ch == "email" and any(v.subject is None for v in (s.variants or self.variants)):
                raise ValueError(f"segment {s.name} sends email: every variant needs a subject")
        if self.channel == "email" and any(v.subject is None for v in self.variants):
            raise ValueError("channel email: every variant needs a subject")
        if self.budget is not None and not any(self.gift_for(v, g).cost for _s, _r, _c, g, vs in self.treatments() for v in vs if self.gift_for(v, g)):
            raise ValueError("a budget without a gift cost caps nothing; add gift.cost or drop the budget")
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


def _unique(names: list[str], what: str) -> None:
    seen = {n for n in names if names.count(n) > 1}
    if seen:
        raise ValueError(f"{what} must be unique ({', '.join(sorted(seen))} repeated)")


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


def check_template(src: str) -> str | None:
    """The reason a template is unusable, or None."""
    try:
        ast = JINJA.parse(src)
    except jinja2.TemplateSyntaxError as exc:
        return f"template syntax error on line {exc.lineno}: {exc.message}"
    unknown = sorted(jinja2.meta.find_undeclared_variables(ast) - TEMPLATE_FIELDS)
    if unknown:
        return f"unknown template variable(s) {', '.join(unknown)}; known: {', '.join(sorted(TEMPLATE_FIELDS))}"
    ctx: dict[str, Any] = {f: SENTINEL.format(f) for f in PERSONAL_FIELDS}
    ctx.update({f: "x" for f in GROUP_FIELDS})
    ctx.update(gift_cost=10.0, stage="active", value_tier="high", locale="zh-CN", channel="sms")
    try:
        text = JINJA.from_string(src).render(**ctx)
    except Exception as exc:  # a filter or arithmetic on a personal value
        return f"template cannot be rendered ({exc}); personal values ({', '.join(PERSONAL_FIELDS)}) are printed as they are, e.g. {{{{ name }}}}"
    stripped = _SENTINEL_RE.sub("", text)
    if "\x00" in stripped:
        return f"a personal value ({', '.join(PERSONAL_FIELDS)}) is changed by a filter; print it as it is, e.g. {{{{ name }}}}"
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


def parse_campaign(data: Any, source: str) -> tuple[Campaign | None, list[tuple[str, str, str]]]:
    """Validate one definition; returns (campaign or None, problems)."""
    if not isinstance(data, dict):
        return None, [(source, "", "the file must be a mapping of campaign fields")]
    try:
        c = Campaign.model_validate({**data, "source": source})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            problems.append((source, _field_path(err["loc"]) or "(campaign)", msg))
        return None, problems
    problems = []
    for path, src in template_sources(c):
        why = check_template(src)
        if why:
            problems.append((source, path, why))
    return (None if problems else c), problems


def load_campaigns(directory: Path | str | None = None, *, include_disabled: bool = True) -> list[Campaign]:
    """Every ``*.yaml``/``*.yml`` in the campaigns directory, validated; raises
    ``CampaignDefinitionError`` naming file, field and reason for every problem."""
    directory = Path(directory or get_settings().campaigns.definitions_dir)
    if not directory.is_dir():
        raise CampaignDefinitionError([(str(directory), "", "the campaigns directory does not exist")])
    problems: list[tuple[str, str, str]] = []
    campaigns: list[Campaign] = []
    for path in sorted(list(directory.glob("*.yaml")) + list(directory.glob("*.yml"))):
        source = path.name
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}" if mark else ""
            problems.append((source, where, f"not valid YAML: {getattr(exc, 'problem', exc)}"))
            continue
        c, errs = parse_campaign(data, source)
        problems.extend(errs)
        if c is not None:
            campaigns.append(c)
    names: dict[str, str] = {}
    for c in campaigns:
        if c.name in names:
            problems.append((c.source or "?", "name", f"{c.name!r} is already defined in {names[c.name]}"))
        names[c.name] = c.source or "?"
    if problems:
        raise CampaignDefinitionError(problems)
    campaigns.sort(key=lambda c: (-c.priority, c.name))
    return [c for c in campaigns if include_disabled or c.enabled]


def get_campaign(name: str, directory: Path | str | None = None) -> Campaign:
    for c in load_campaigns(directory):
        if c.name == name:
            return c
    known = ", ".join(c.name for c in load_campaigns(directory))
    raise KeyError(f"no campaign {name!r}; defined: {known}")


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
