"""The ops artefacts under ops/: the Grafana dashboard, the Prometheus alert rules and the scrape
example use only metrics a live server exports; promtool accepts the rules, the config and every
dashboard query, and the rules' unit tests (ops/prometheus/alerts_test.yml) pass.

Metric names are read from PromQL loosely: string literals, label matchers (``{...}``), ranges
(``[...]``), grouping clauses (``by (...)``, ``on (...)``...) and Grafana variables are dropped,
and every identifier left that is not a PromQL function or keyword is a metric name. An
unknown word followed by ``(`` is an error, so a misspelt function is not taken for a metric.

The live ``/metrics`` comes from two servers in this process after a little traffic: one on the
simulator gateway (scraped over HTTP on ``http.monitor_listen``) and one bound over SMPP to the
simulated SMSC (loadtest/smsc.py), whose collectors the simulator does not have. A family with
no samples yet (a labelled counter nothing has counted) still shows as its ``# TYPE`` line; the
names a query may use are the ones Prometheus stores: ``_total`` and ``_created`` for a counter,
``_bucket``, ``_sum``, ``_count`` and ``_created`` for a histogram, the name itself for a gauge.

promtool comes with Debian's ``prometheus`` package (`make test` installs it). Without it these
checks are skipped, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import yaml

from intercept.gateways import SimGateway
from intercept.gateways.smpp.client import SmppGateway
from intercept.server import Server
from loadtest.smsc import Smsc

from helpers import OTHER_OUR, OUR, make_config, registry

ROOT = Path(__file__).resolve().parent.parent
OPS = ROOT / "ops"
DASHBOARD = OPS / "grafana" / "intercept.json"
ALERTS = OPS / "prometheus" / "alerts.yml"
ALERTS_TEST = OPS / "prometheus" / "alerts_test.yml"
SCRAPE = OPS / "prometheus" / "scrape.yml"
OPERATIONS = ROOT / "docs" / "operations.md"
PROMTOOL = "/usr/bin/promtool"

# PromQL's functions and aggregation operators, then its keywords (Prometheus 2.x).
PROMQL_FUNCTIONS = frozenset({
    "abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh",
    "avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh",
    "count_over_time", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "deg",
    "delta", "deriv", "exp", "floor", "histogram_avg", "histogram_count", "histogram_fraction",
    "histogram_quantile", "histogram_stddev", "histogram_stdvar", "histogram_sum", "holt_winters",
    "hour", "idelta", "increase", "irate", "label_join", "label_replace", "last_over_time", "ln",
    "log10", "log2", "mad_over_time", "max_over_time", "min_over_time", "minute", "month", "pi",
    "predict_linear", "present_over_time", "quantile_over_time", "rad", "rate", "resets", "round",
    "scalar", "sgn", "sin", "sinh", "sort", "sort_by_label", "sort_by_label_desc", "sort_desc",
    "sqrt", "stddev_over_time", "stdvar_over_time", "sum_over_time", "tan", "tanh", "time",
    "timestamp", "vector", "year", "avg", "bottomk", "count", "count_values", "group", "limitk",
    "limit_ratio", "max", "min", "quantile", "stddev", "stdvar", "sum", "topk"
})
PROMQL_KEYWORDS = frozenset({
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "atan2", "start", "end", "inf", "nan", "Inf", "NaN"
})
PROMETHEUS_SERIES = frozenset({"up"})
"""Series Prometheus makes itself for every target, not the server."""

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_WORD = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?")
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*\w+\s*\)\s*$", re.S)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or a Grafana `label_values(...)` query) reads."""
    if found := _LABEL_VALUES.match(expr):
        expr = found.group(1)
    text = _STRING.sub(" ", expr)
    text = _VARIABLE.sub(" ", text)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _WORD.finditer(text):
        word, call = match.group(1), match.group(2)
        if word in PROMQL_FUNCTIONS or word in PROMQL_KEYWORDS:
            continue
        if call:
            raise ValueError(f"{word}( in {expr!r} is not a PromQL function")
        names.add(word)
    return names


def exported_names(exposition: str) -> set[str]:
    """The series names Prometheus stores from a /metrics text (see the module docstring)."""
    names = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            if kind == "counter":
                base = name.removesuffix("_total")
                names |= {f"{base}_total", f"{base}_created"}
            elif kind == "histogram":
                names |= {f"{name}{s}" for s in ("_bucket", "_sum", "_count", "_created")}
            elif kind == "summary":
                names |= {name, *(f"{name}{s}" for s in ("_sum", "_count", "_created"))}
            else:
                names.add(name)
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # a collapsed row keeps its panels inside


def dashboard_queries(dashboard: dict[str, Any]) -> dict[str, str]:
    """Every query of the dashboard (panel targets, template variables) by where it is."""
    queries = {}
    for panel in _panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            queries[f"panel {panel['id']} {panel['title']!r} {target['refId']}"] = target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            queries[f"variable {variable['name']}"] = (query["query"] if isinstance(query, dict)
                                                       else query)
    return queries


def rule_queries(rules: dict[str, Any]) -> dict[str, str]:
    """Every `expr` of a Prometheus rules file, by alert (or recorded) name."""
    return {rule.get("alert") or rule["record"]: rule["expr"]
            for group in rules["groups"] for rule in group["rules"]}


def rule_test_series(tests: dict[str, Any]) -> dict[str, str]:
    """Every input series of a promtool rule test file, by its position."""
    return {f"input series {i}": case["series"]
            for test in tests["tests"] for i, case in enumerate(test["input_series"])}


def unknown_metrics(queries: dict[str, str], exported: set[str]) -> list[str]:
    """One line per metric name a query reads that `exported` lacks."""
    known = exported | PROMETHEUS_SERIES
    return [f"{where}: {name}" for where, expr in queries.items()
            for name in sorted(metric_names(expr) - known)]


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _rules() -> dict[str, Any]:
    return yaml.safe_load(ALERTS.read_text())


# -- the parser


@pytest.mark.parametrize(("expr", "names"), [
    ('sum by (instance) (rate(intercept_messages_in_total{job="x", a=~"b|c"}[5m]))',
     {"intercept_messages_in_total"}),
    ("histogram_quantile(0.99, sum by (le) (rate(intercept_store_commit_seconds_bucket"
     "[$__rate_interval])))", {"intercept_store_commit_seconds_bucket"}),
    ('up{job="intercept"} == 0', {"up"}),
    ("a_total / on (instance) group_left (number) b offset 5m > bool 1e3",
     {"a_total", "b"}),
    ("intercept_outbox_depth > 100 and deriv(intercept_outbox_depth[10m]) > 0",
     {"intercept_outbox_depth"}),
    ("time() - max(x_seconds{instance=~\"$instance\"} > 0)", {"x_seconds"}),
    ('label_replace(g, "dst", "$1", "src", "(.*)")', {"g"}),
    ('label_values(intercept_live_actors{job="$job"}, instance)', {"intercept_live_actors"}),
    ("sum(rate(m_total[1h:5m])) without (kind)", {"m_total"}),
])
def test_metric_names_are_read_from_promql(expr, names):
    assert metric_names(expr) == names


def test_a_misspelt_function_is_not_taken_for_a_metric():
    with pytest.raises(ValueError, match=r"histogram_quantil\( .* is not a PromQL function"):
        metric_names("histogram_quantil(0.9, rate(x_bucket[5m]))")


EXPOSITION = """\
# HELP demo_in Inbound
# TYPE demo_in counter
demo_in_total 3.0
# TYPE demo_labelled_total counter
# TYPE demo_seconds histogram
demo_seconds_bucket{le="+Inf"} 1.0
# TYPE demo_depth gauge
demo_depth 0.0
"""


def test_exported_names_follow_the_suffixes_prometheus_stores():
    assert exported_names(EXPOSITION) == {
        "demo_in_total", "demo_in_created", "demo_labelled_total", "demo_labelled_created",
        "demo_seconds_bucket", "demo_seconds_sum", "demo_seconds_count", "demo_seconds_created",
        "demo_depth"}


def test_the_check_names_a_made_up_metric():
    exported = exported_names(EXPOSITION)
    queries = {"panel 'ok'": "sum(rate(demo_in_total[5m])) + demo_depth",
               "panel 'typo'": "rate(demo_inn_total[5m])",
               "alert Base": "rate(demo_in[5m])",  # a counter's name without _total
               "alert Histogram": "demo_seconds > 1",  # a histogram has no series of its name
               "alert Invented": "intercept_made_up_metric == 0 or up == 0"}
    assert unknown_metrics(queries, exported) == [
        "panel 'typo': demo_inn_total", "alert Base: demo_in", "alert Histogram: demo_seconds",
        "alert Invented: intercept_made_up_metric"]


# -- the artefacts against a live server


async def _sim_metrics(tmp_path: Path) -> str:
    config = make_config(http={"enabled": True, "listen": "127.0.0.1:0",
                               "monitor_listen": "127.0.0.1:0"})
    gateway = SimGateway(receipts=True)
    server = Server(config, registry=registry(), gateway=gateway, store_path=tmp_path / "sim.db")
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        with trio.fail_after(30):
            for i, (ours, text) in enumerate([(OUR, "hey"), (OTHER_OUR, "how much"),
                                              (OUR, "bye")]):
                done = await gateway.inject(their_number=f"+1206555017{i}", our_number=ours,
                                            text=text)
                await server.settled(done.conversation_id, done.conv_seq, poll=0.005)
            (monitor,) = server.monitor_addresses
            async with httpx.AsyncClient(base_url=monitor, timeout=10) as client:
                response = await client.get("/metrics")
        server.stop()
    assert response.status_code == 200
    return response.text


async def _smpp_metrics(tmp_path: Path) -> str:
    smsc = Smsc()
    gateway = SmppGateway(connect=smsc.connect, system_id="intercept", password="secret")
    server = Server(make_config(), registry=registry(), gateway=gateway,
                    store_path=tmp_path / "smpp.db")
    async with trio.open_nursery() as nursery:
        await nursery.start(smsc.run)
        await nursery.start(server.run)
        with trio.fail_after(30):
            await smsc.bound.wait()
            smsc.deliver_nowait("+12065550180", OUR, "hey")
            await smsc.wait_for("+12065550180", 1)
        text = server.metrics.render().decode()
        server.stop()
        nursery.cancel_scope.cancel()
    return text


async def test_the_dashboard_and_the_rules_use_only_exported_metrics(tmp_path):
    exported = exported_names(await _sim_metrics(tmp_path))
    assert "intercept_messages_in_total" in exported and "intercept_smpp_bound" not in exported
    exported |= exported_names(await _smpp_metrics(tmp_path))
    assert "intercept_smpp_bound" in exported
    dashboard, rules = dashboard_queries(_dashboard()), rule_queries(_rules())
    assert len(dashboard) > 40 and len(rules) > 10
    series = rule_test_series(yaml.safe_load(ALERTS_TEST.read_text()))
    assert unknown_metrics(dashboard | rules | series, exported) == []
    made_up = {"panel 'made up' A": "sum(rate(intercept_messages_lost_total[5m]))"}
    assert unknown_metrics(dashboard | made_up, exported) == [
        "panel 'made up' A: intercept_messages_lost_total"]


# -- the dashboard's shape


def test_the_dashboard_takes_its_data_source_as_a_variable():
    dashboard = _dashboard()
    (source,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert source["query"] == "prometheus"
    uses = {json.dumps(p["datasource"]) for p in _panels(dashboard["panels"]) if "datasource" in p}
    uses |= {json.dumps(t["datasource"]) for p in _panels(dashboard["panels"])
             for t in p.get("targets", [])}
    assert uses == {json.dumps({"type": "prometheus", "uid": f"${{{source['name']}}}"})}


def test_the_dashboard_opens_with_what_someone_on_call_needs():
    panels = list(_panels(_dashboard()["panels"]))
    assert panels[0]["type"] == "row" and panels[0]["title"] == "At a glance"
    first_row = panels[1:panels.index(next(p for p in panels[1:] if p["type"] == "row"))]
    assert {p["gridPos"]["y"] for p in first_row} == {1}
    reads = set().union(*(metric_names(t["expr"]) for p in first_row for t in p["targets"]))
    assert {"up", "intercept_store_failing", "intercept_smpp_bound", "intercept_live_actors",
            "intercept_outbox_depth", "intercept_handoffs_open",
            "intercept_handoff_oldest_wait_seconds", "intercept_number_paused"} <= reads
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))


# -- the rules


def _anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_alert_is_explained_in_the_operations_guide():
    anchors = {_anchor(line.lstrip("#")) for line in OPERATIONS.read_text().splitlines()
               if line.startswith("#")}
    for group in _rules()["groups"]:
        for rule in group["rules"]:
            notes = rule["annotations"]
            assert notes["summary"] and notes["description"], rule["alert"]
            page, _, anchor = notes["runbook"].partition("#")
            assert page == "docs/operations.md" and anchor in anchors, rule["alert"]
            assert anchor == rule["alert"].lower(), rule["alert"]
            assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]


def _promtool() -> str:
    if Path(PROMTOOL).exists():
        return PROMTOOL
    if os.environ.get("CI") == "true":
        pytest.fail(f"{PROMTOOL} is missing: `make test` installs it (apt-get install "
                    "prometheus)")
    pytest.skip(f"{PROMTOOL} is missing: `make test` installs it with Debian's prometheus "
                "package (apt-get install prometheus)")


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60,
                          check=False)


def test_promtool_accepts_the_alert_rules():
    done = _run(_promtool(), "check", "rules", ALERTS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rule_queries(_rules()))} rules found" in done.stdout


def test_each_alert_fires_when_it_should_and_only_then():
    """ops/prometheus/alerts_test.yml: every alert fires for a server that breaks its rule,
    none for a healthy one near the thresholds, and `for:` holds InterceptDown pending."""
    done = _run(_promtool(), "test", "rules", ALERTS_TEST)
    assert done.returncode == 0, done.stdout + done.stderr
    tests = yaml.safe_load(ALERTS_TEST.read_text())
    (firing, _) = tests["tests"][0]["promql_expr_test"]
    named = {re.search(r'alertname="(\w+)"', sample["labels"]).group(1)
             for sample in firing["exp_samples"]}
    assert named == set(rule_queries(_rules()))


def test_promtool_accepts_the_scrape_example_and_its_rules():
    done = _run(_promtool(), "check", "config", SCRAPE)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 rule files found" in done.stdout
    config = yaml.safe_load(SCRAPE.read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "intercept"
    assert 'up{job="intercept"}' in rule_queries(_rules())["InterceptDown"]


def test_promtool_parses_every_dashboard_query(tmp_path):
    """Each query, its Grafana variables given values, as a recording rule promtool checks."""
    values = {"$__rate_interval": "1m", "$job": "intercept", "$instance": ".+"}
    rules = []
    for i, expr in enumerate(e for e in dashboard_queries(_dashboard()).values()
                             if not e.startswith("label_values(")):
        for variable, value in values.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, expr
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = _run(_promtool(), "check", "rules", path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_without_promtool_the_checks_skip_with_a_sentence_or_fail_under_ci(monkeypatch):
    monkeypatch.setattr(f"{__name__}.PROMTOOL", "/nonexistent/promtool")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="apt-get install prometheus"):
        _promtool()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="make test` installs it"):
        _promtool()

