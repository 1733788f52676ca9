"""The provisioned Grafana dashboards as the tests (and bench/queries.py) read them: each panel, and
its SQL with the ClickHouse data source's macros expanded as the plugin's backend does."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))

# Every dashboard variable on "All"
ALL = {"tenant": None, "agent": None, "model": None, "provider": None}


def panels():
    """(dashboard file stem, dashboard, panel) for every panel of every provisioned dashboard."""
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            yield path.stem, board, panel


# --- the ClickHouse data source's macros (grafana-clickhouse-datasource v4) -----------------------

def expand(sql: str, start: int, end: int, variables: dict[str, list[str] | None], interval_s: int = 3600) -> str:
    """`$__timeFilter(c)` etc. as the plugin's backend expands them; variables as Grafana formats them."""
    def day(ts: int) -> str:
        return time.strftime("%Y-%m-%d", time.gmtime(ts))

    sql = re.sub(r"\$__timeFilter\(([^)]+)\)", lambda m: f"{m[1]} >= toDateTime({start}) AND {m[1]} <= toDateTime({end})", sql)
    sql = re.sub(r"\$__dateFilter\(([^)]+)\)", lambda m: f"{m[1]} >= toDate('{day(start)}') AND {m[1]} <= toDate('{day(end)}')", sql)
    sql = re.sub(r"\$__timeInterval\(([^)]+)\)", lambda m: f"toStartOfInterval(toDateTime({m[1]}), INTERVAL {interval_s} second)", sql)
    sql = sql.replace("$__fromTime", f"toDateTime({start})").replace("$__toTime", f"toDateTime({end})")
    sql = sql.replace("$__interval_s", str(interval_s))
    for name, values in variables.items():
        # All -> the variable's custom all value, inserted as is; else each value single-quoted
        text = "'__all__'" if values is None else ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
        sql = sql.replace(f"${{{name}:singlequote}}", text)
    assert "$" not in sql, f"unexpanded macro or variable in: {sql}"
    return sql
