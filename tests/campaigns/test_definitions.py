"""Campaign definitions: the shipped ones are valid; an invalid one is rejected with
file, field and reason (zh-CN by default, en), before anything is planned or sent."""
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


INVALID = [  # (what, override, field, English reason, zh-CN reason)
    ("unknown field", dict(audiance={"rule": {}}), "audiance", "Extra inputs are not permitted", "不认识的字段"),
    ("unknown stage", dict(audience={"rule": {"lifecycle_stage": ["sleeping"]}}), "audience.rule.lifecycle_stage[0]",
     "Input should be one of 'prospect', 'new', 'active', 'loyal', 'silent', 'churned'", "取值应为以下之一：'prospect', 'new', 'active', 'loyal', 'silent', 'churned'"),
    ("delete", dict(audience={"sql": "DELETE FROM customers"}), "audience.sql",
     "only a read-only SELECT is allowed (the query starts with DELETE)", "只允许只读的 SELECT（查询以 DELETE 开头）"),
    ("two statements", dict(audience={"sql": "SELECT customer_id FROM tags; DROP TABLE tags"}), "audience.sql", "single SELECT", "只允许一条 SELECT 语句"),
    ("select into", dict(audience={"sql": "SELECT customer_id INTO x FROM tags"}), "audience.sql", "(found INTO)", "（发现 INTO）"),
    ("rule and sql", dict(audience={"rule": {"lifecycle_stage": ["silent"]}, "sql": "SELECT customer_id FROM tags"}), "audience", "exactly one", "必须且只能给一个"),
    ("typo variable", dict(variants=[{"name": "A", "body": {"zh-CN": "{{ nmae }}", "en": "x"}}]), "variants[0].body.zh-CN",
     "unknown template variable(s) nmae; known: campaign,", "未知的模板变量 nmae；可用的变量：campaign，"),
    ("syntax", dict(variants=[{"name": "A", "body": {"zh-CN": "ok", "en": "{{ name "}}]), "variants[0].body.en", "template syntax error on line 1", "模板语法错误，第 1 行"),
    ("filter on personal", dict(variants=[{"name": "A", "body": {"zh-CN": "{{ name|upper }}", "en": "x"}}]), "variants[0].body.zh-CN",
     "is changed by a filter; print it as it is, e.g. {{ name }}", "被过滤器改动了；请原样输出，例如 {{ name }}"),
    ("email needs subject", dict(channel="email"), "(campaign)", "channel email: every variant needs a subject", "渠道为 email：每个版本都需要 subject"),
    ("holdout", dict(holdout_share=1.5), "holdout_share", "less than or equal to 0.9", "应小于或等于 0.9"),
    ("quiet hours", dict(quiet_hours={"start": "25:00", "end": "09:00"}), "quiet_hours.start", "'25:00' is not a time of day like 21:00", "'25:00' 不是 21:00 这样的时刻"),
    ("reserved", dict(name="calendar"), "name", "'calendar' is reserved", "'calendar' 是保留名称"),
    ("bad name", dict(name="Wake Up"), "name", "String should match pattern '^[a-z][a-z0-9-]{1,39}$'", "格式不符合要求，应匹配 '^[a-z][a-z0-9-]{1,39}$'"),
    ("no variants", dict(variants=[]), "variants", "at least 1", "至少需要 1 项，现在是 0 项"),
    ("missing language", dict(variants=[{"name": "A", "body": {"zh-CN": "x"}}]), "variants[0].body.en", "Field required", "缺少必填字段"),
    ("stage change without to", dict(entry=[{"on": "stage_change"}]), "entry[0]", "needs 'to'", "stage_change 触发需要 'to'"),
    ("budget without gift", dict(budget={"amount": 10}, variants=[{"name": "A", "body": {"zh-CN": "x", "en": "y"}}]), "(campaign)",
     "budget without a gift cost", "没有礼品成本的预算限制不了任何东西；请加上 gift.cost，或去掉 budget"),
    ("unknown channel", dict(channel="fax"), "channel", "Input should be one of 'email', 'sms', 'push', 'staff'", "取值应为以下之一：'email', 'sms', 'push', 'staff'"),
    ("duplicate segment", dict(segments=[{"name": "v", "when": {"value_tier": ["high"]}}, {"name": "v", "when": {"value_tier": ["low"]}}]), "(campaign)",
     "segment names must be unique (v repeated)", "分群名称必须唯一（v 重复）"),
    ("empty rule list", dict(audience={"rule": {"lifecycle_stage": []}}), "audience.rule",
     "lifecycle_stage: an empty list matches nobody", "lifecycle_stage：空列表不匹配任何人"),
]


@pytest.mark.parametrize("what,over,field,en,zh", INVALID, ids=[i[0] for i in INVALID])
def test_invalid_definition_names_file_field_reason(cdir, what, over, field, en, zh):
    write_campaign(cdir, campaign("good"), "good.yaml")
    write_campaign(cdir, {**campaign("bad"), **over}, "bad.yaml")
    for lang, reason, head, colon in ((None, zh, "活动定义无效：", "："), ("en", en, "invalid campaign definition(s):", ": ")):
        with pytest.raises(CampaignDefinitionError) as exc:
            load_campaigns(lang=lang)  # None: the settings' language, zh-CN by default
        probs = exc.value.problems
        assert all(f == "bad.yaml" for f, _, _ in probs), probs
        assert any(fld == field and reason in why for _, fld, why in probs), (lang, probs)
        assert str(exc.value).startswith(head) and f"bad.yaml{colon}{field}{colon}" in str(exc.value)


def test_yaml_errors_and_duplicates(cdir):
    (cdir / "broken.yaml").write_text("name: [unclosed\n", encoding="utf-8")
    write_campaign(cdir, campaign("twin"), "a.yaml")
    write_campaign(cdir, campaign("twin"), "b.yaml")
    with pytest.raises(CampaignDefinitionError) as exc:
        load_campaigns(lang="en")
    text = str(exc.value)
    assert "broken.yaml: line 2: not valid YAML" in text
    assert "b.yaml: name: 'twin' is already defined in a.yaml" in text
    with pytest.raises(CampaignDefinitionError) as exc:
        load_campaigns()
    text = str(exc.value)
    assert "broken.yaml：第 2 行：不是有效的 YAML：" in text
    assert "b.yaml：name：'twin' 已在 a.yaml 中定义" in text


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


def test_select_only_problem_in_both_languages():
    with pytest.raises(ValueError) as exc:
        check_select_only("UPDATE tags SET at_risk = true")
    assert str(exc.value) == exc.value.text("en") == "only a read-only SELECT is allowed (the query starts with UPDATE)"
    assert exc.value.text("zh-CN") == exc.value.text() == "只允许只读的 SELECT（查询以 UPDATE 开头）"
