"""The operations files in ops/: they parse, and every metric their queries
use is one the running service exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from httpx import AsyncClient

from tests.fixtures.probe import NOTES

pytestmark = pytest.mark.anyio
OPS = Path(__file__).resolve().parent.parent / "ops"
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$job": "service", "$actor": ".*"}


def dashboards() -> list[Path]:
    return sorted((OPS / "grafana").glob("*.json"))


def rule_files() -> list[Path]:
    files = (OPS / "prometheus").glob("*.yml")
    return sorted(path for path in files if not path.name.endswith(".test.yml"))


def dashboard_queries(path: Path) -> list[str]:
    dashboard = json.loads(path.read_text())
    queries = [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            queries.append(variable["query"]["query"])
    return queries


def rule_queries(path: Path) -> list[str]:
    document = yaml.safe_load(path.read_text())
    return [rule["expr"] for group in document["groups"] for rule in group["rules"]]


def as_promql(query: str) -> str:
    """Grafana's variables replaced; `label_values(m, l)` read as `m`."""
    for variable, value in GRAFANA_VARIABLES.items():
        query = query.replace(variable, value)
    label_values = re.fullmatch(r"label_values\((.*),\s*\w+\)", query.strip())
    return label_values[1] if label_values else query


def metric_names(query: str) -> set[str]:
    """The metric names a PromQL query selects (parsed, not pattern-matched)."""
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)
        for attribute in ("expr", "lhs", "rhs", "vector_selector", "param"):
            child = getattr(node, attribute, None)
            if child is not None and not isinstance(child, str | int | float):
                visit(child)
        for child in getattr(node, "args", None) or ():
            visit(child)

    visit(promql_parser.parse(as_promql(query)))
    return names


def exposed_names(exposition: str) -> set[str]:
    """Every sample name /metrics can show, from its TYPE lines and samples."""
    suffixes = {
        "histogram": ("_bucket", "_count", "_sum"),
        "summary": ("_count", "_sum"),
        "counter": ("", "_total"),
    }
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.update(name + suffix for suffix in suffixes.get(kind, ("",)))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


@pytest.mark.parametrize("path", dashboards(), ids=lambda p: p.name)
def test_dashboards_are_well_formed(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in dashboard["panels"]:
        assert panel["targets"], f"panel {panel['title']!r} has queries"
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"}
        for target in panel["targets"]:
            used = set(re.findall(r"\$(\w+)", target["expr"])) - {"__rate_interval"}
            assert used <= variables, f"{panel['title']!r} uses undefined {used}"


@pytest.mark.parametrize("path", rule_files(), ids=lambda p: p.name)
def test_alert_rules_are_well_formed(path: Path) -> None:
    document = yaml.safe_load(path.read_text())
    for group in document["groups"]:
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}
            assert rule["labels"]["severity"] in {"page", "ticket"}
            assert rule["annotations"]["summary"]
            if "for" in rule:
                assert re.fullmatch(r"\d+[smh]", rule["for"])


def test_the_collector_config_wires_what_it_defines() -> None:
    config = yaml.safe_load((OPS / "otel-collector.yaml").read_text())
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"].endswith(":4317")
    assert protocols["http"]["endpoint"].endswith(":4318")
    for pipeline in config["service"]["pipelines"].values():
        for kind in ("receivers", "processors", "exporters"):
            assert set(pipeline[kind]) <= set(config[kind]), kind
    assert set(config["service"]["extensions"]) <= set(config["extensions"])


def test_every_query_parses() -> None:
    queries = [q for p in dashboards() for q in dashboard_queries(p)]
    queries += [q for p in rule_files() for q in rule_queries(p)]
    assert queries
    for query in queries:
        assert metric_names(query), f"selects no metric: {query}"


async def test_every_metric_queried_is_exposed(client: AsyncClient) -> None:
    # Requests and a readiness check, so that labelled series exist too.
    await client.get(NOTES)
    await client.get("/ready")
    exposition = (await client.get("/metrics")).text

    exposed = exposed_names(exposition)
    queried: dict[str, str] = {}
    for path in dashboards():
        queried.update(
            {n: path.name for q in dashboard_queries(path) for n in metric_names(q)}
        )
    for path in rule_files():
        queried.update(
            {n: path.name for q in rule_queries(path) for n in metric_names(q)}
        )
    missing = {name: where for name, where in queried.items() if name not in exposed}
    assert not missing, f"queried but not exposed: {missing}"
