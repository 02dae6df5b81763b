"""The "what to do" line of a night that has no source configured says to run again once, at
the end, naming the command; it said it twice ("…然后重新运行；…只在 demo 运行期间存在，然后重新运行
`userops run nightly`")."""
from __future__ import annotations

from tasks.alerts.problems import describe_failure

NO_URL = "no URL configured for the crm source: set USEROPS_CRM__URL (or run `userops demo` to use the sample CRM and order system)"


def test_no_source_fix_says_run_again_once():
    for flow, command in (("nightly", "`userops run nightly`"), ("score-churn", "score-churn")):
        zh, en = describe_failure(text=NO_URL, flow=flow, lang="zh-CN"), describe_failure(text=NO_URL, flow=flow, lang="en")
        assert zh.kind == en.kind == "source"
        assert zh.fix.count("重新运行") == 1 and zh.fix.endswith(f"然后重新运行 {command}"), zh.fix
        assert en.fix.count("run again") + en.fix.count("re-run") == 1 and en.fix.endswith(f"then re-run {command}"), en.fix
        for p, words in ((zh, ("USEROPS_CRM__URL", "USEROPS_ORDERS__URL", "`userops demo`")), (en, ("USEROPS_CRM__URL", "USEROPS_ORDERS__URL", "`userops demo`"))):
            assert all(w in p.fix for w in words), p.fix
