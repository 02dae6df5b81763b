"""Campaign definitions: the shipped ones are valid; an invalid one is rejected with
file, field and reason, before anything is planned or sent."""
from __future__ import annotations

import pytest

from tasks.campaigns.definitions import CampaignDefinitionError, check_select_only, load_campaigns
from tests.campaigns.conftest import campaign, write_campaign
from userops.settings import PROJECT_ROOT


def test_shipped_definitions_are_valid_and_on_by_default():
    cs = {c.name: c for c in load_campaigns(PROJECT_ROOT / "campaigns")}
    assert {"awakening", "retention", "recall", "onboarding", "vip-care"} <= set(cs)
    assert all(cs[n].enabled for n in ("awakening", "retention", "recall"))
    assert not cs["onboarding"].enabled and not cs["vip-care"].enabled
    assert cs["awakening"].audience.rule.lifecycle_stage == ["silent"]
    assert set(cs["retention"].audience.rule.lifecycle_stage) == {"active", "loyal"}
    assert cs["retention"].segments[0].when.value_tier == ["high"]  # VIP treatment
    assert cs["recall"].audience.rule.value_tier == ["mid", "high"]
    assert cs["recall"].listens_to("userops.health.silent-share-high")
    assert cs["onboarding"].entries("stage_change")[0].to == ["new"]
    # priority order: higher first
    names = [c.name for c in load_campaigns(PROJECT_ROOT / "campaigns")]
    assert names.index("retention") < names.index("recall") < names.index("awakening")


INVALID = [
    ("unknown field", dict(audiance={"rule": {}}), "audiance", "Extra inputs are not permitted"),
    ("unknown stage", dict(audience={"rule": {"lifecycle_stage": ["sleeping"]}}), "audience.rule.lifecycle_stage[0]", "Input should be"),
    ("delete", dict(audience={"sql": "DELETE FROM customers"}), "audience.sql", "read-only SELECT"),
    ("two statements", dict(audience={"sql": "SELECT customer_id FROM tags; DROP TABLE tags"}), "audience.sql", "single SELECT"),
    ("select into", dict(audience={"sql": "SELECT customer_id INTO x FROM tags"}), "audience.sql", "INTO"),
    ("rule and sql", dict(audience={"rule": {"lifecycle_stage": ["silent"]}, "sql": "SELECT customer_id FROM tags"}), "audience", "exactly one"),
    ("typo variable", dict(variants=[{"name": "A", "body": {"zh-CN": "{{ nmae }}", "en": "x"}}]), "variants[0].body.zh-CN", "unknown template variable(s) nmae"),
    ("syntax", dict(variants=[{"name": "A", "body": {"zh-CN": "ok", "en": "{{ name "}}]), "variants[0].body.en", "template syntax error"),
    ("filter on personal", dict(variants=[{"name": "A", "body": {"zh-CN": "{{ name|upper }}", "en": "x"}}]), "variants[0].body.zh-CN", "personal value"),
    ("email needs subject", dict(channel="email"), "(campaign)", "needs a subject"),
    ("holdout", dict(holdout_share=1.5), "holdout_share", "less than or equal to 0.9"),
    ("quiet hours", dict(quiet_hours={"start": "25:00", "end": "09:00"}), "quiet_hours.start", "not a time of day"),
    ("reserved", dict(name="calendar"), "name", "reserved"),
    ("bad name", dict(name="Wake Up"), "name", "String should match pattern"),
    ("no variants", dict(variants=[]), "variants", "at least 1"),
    ("missing language", dict(variants=[{"name": "A", "body": {"zh-CN": "x"}}]), "variants[0].body.en", "Field required"),
    ("stage change without to", dict(entry=[{"on": "stage_change"}]), "entry[0]", "needs 'to'"),
    ("budget without gift", dict(budget={"amount": 10}, variants=[{"name": "A", "body": {"zh-CN": "x", "en": "y"}}]), "(campaign)", "budget without a gift cost"),
    ("unknown channel", dict(channel="fax"), "channel", "Input should be"),
]


@pytest.mark.parametrize("what,over,field,reason", INVALID, ids=[i[0] for i in INVALID])
def test_invalid_definition_names_file_field_reason(cdir, what, over, field, reason):
    write_campaign(cdir, campaign("good"), "good.yaml")
    write_campaign(cdir, {**campaign("bad"), **over}, "bad.yaml")
    with pytest.raises(CampaignDefinitionError) as exc:
        load_campaigns()
    probs = exc.value.problems
    assert all(f == "bad.yaml" for f, _, _ in probs), probs
    assert any(fld == field and reason in why for _, fld, why in probs), probs
    assert "bad.yaml" in str(exc.value)


def test_yaml_errors_and_duplicates(cdir):
    (cdir / "broken.yaml").write_text("name: [unclosed\n", encoding="utf-8")
    write_campaign(cdir, campaign("twin"), "a.yaml")
    write_campaign(cdir, campaign("twin"), "b.yaml")
    with pytest.raises(CampaignDefinitionError) as exc:
        load_campaigns()
    text = str(exc.value)
    assert "broken.yaml" in text and "not valid YAML" in text
    assert "b.yaml: name: 'twin' is already defined in a.yaml" in text


def test_on_key_and_shorthand_entries(cdir):
    # YAML 1.1 reads `on:` as a boolean; the loader accepts it as written.
    (cdir / "x.yaml").write_text(
        "name: onb\ntitle: {zh-CN: 新客, en: New}\nentry:\n  - nightly\n  - on: stage_change\n    to: [new]\n"
        "audience: {rule: {lifecycle_stage: [new]}}\nchannel: push\nvariants:\n  - name: A\n    body: {zh-CN: 欢迎, en: Welcome}\n",
        encoding="utf-8",
    )
    (c,) = load_campaigns()
    assert [e.on for e in c.entry] == ["nightly", "stage_change"]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT customer_id FROM tags WHERE lifecycle_stage = 'silent'",
        "with x as (select customer_id from tags) select customer_id from x;",
        "SELECT customer_id FROM customers WHERE city = 'delete; drop'",
        "-- DROP TABLE tags\nSELECT customer_id FROM tags",
    ],
)
def test_select_only_accepts(sql):
    assert check_select_only(sql)


@pytest.mark.parametrize(
    "sql,why",
    [
        ("UPDATE tags SET at_risk = true", "starts with UPDATE"),
        ("SELECT 1; SELECT 2", "single SELECT"),
        ("WITH d AS (DELETE FROM tags RETURNING customer_id) SELECT customer_id FROM d", "DELETE"),
        ("SELECT pg_sleep(100)", "PG_SLEEP"),
        ("", "empty"),
        ("PRAGMA writable_schema = 1", "starts with PRAGMA"),
    ],
)
def test_select_only_rejects(sql, why):
    with pytest.raises(ValueError, match=why):
        check_select_only(sql)
