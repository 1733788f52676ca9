"""`genaitrace score`, `genaitrace sessions` and `genaitrace session`: scores and conversations.

    genaitrace score TRACE_ID NAME VALUE [--span SPAN_ID] [--label L] [--explanation E] [--source S]
        VALUE: a number (numeric), true/false (boolean), anything else (categorical: the label).
        Sent as an OTLP log event `gen_ai.evaluation.result` to the collector's OTLP/HTTP receiver
        (`POST /v1/logs`; the endpoint from the config's otlp receiver, or --endpoint, with --header
        for an authenticated receiver).
    genaitrace sessions [--user U] [--limit N] [--json]
        Conversations, newest first: turns, cost, tokens, errors, scores (view genai_conversations).
    genaitrace session CONVERSATION_ID
        Its turns as a table (view genai_conversation_traces), then each turn's trace as a tree
        and its scores.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Optional

import typer

from collector.render import TRACE_SQL, client_or_exit, console, err, load_or_exit, print_result, trace_tree

CONFIG_OPTION = typer.Option("otel-collector.yaml", "--config", "-c", help="collector config file")

SCORE_HELP = "a number, true/false, or a category"

SESSIONS_SQL = """
SELECT conversation_id, user_id, tenant, first_turn, last_turn, turns, calls, errors, total_tokens,
       round(cost_usd, 6) AS cost_usd, scores, round(avg_score, 3) AS avg_score
FROM {db}.genai_conversations
{where}
ORDER BY last_turn DESC
LIMIT {{limit:UInt32}}
"""

TURNS_SQL = """
SELECT turn, TraceId, start, duration_ms, root_span, user_id, calls, errors, total_tokens,
       round(cost_usd, 6) AS cost_usd, ifNull(scores, 0) AS scores, round(avg_score, 3) AS avg_score
FROM {db}.genai_conversation_traces
WHERE conversation_id = {{conversation_id:String}}
ORDER BY turn
"""

SCORES_SQL = """
SELECT TraceId, SpanId, name, value, label, value_type, source, explanation
FROM {db}.genai_scores
WHERE TraceId IN ({{trace_ids:Array(String)}})
ORDER BY Timestamp
"""


def parse_value(text: str, label: str | None) -> tuple[float | bool | None, str | None]:
    """VALUE as the score's value and label: number, boolean, or a category (the label)."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true", label
    try:
        return float(text), label
    except ValueError:
        return None, label or text


def _http_endpoint(config: str) -> str:
    """The base URL of the first OTLP receiver with an HTTP protocol in the config."""
    from collector.confighelpers import local_url

    cfg = load_or_exit(config)
    for cid, component in cfg.receivers.items():
        http = component.config.protocols.http if cid.type == "otlp" else None
        if http is not None:
            return local_url(http.endpoint)
    err.print(f"[bold red]error[/]: {config} has no OTLP receiver with an http protocol; give --endpoint")
    raise typer.Exit(2)


def score(trace_id: str = typer.Argument(..., help="the evaluated trace, 32 hex characters"),
          name: str = typer.Argument(..., help="the score's name, e.g. user_satisfaction"),
          value: str = typer.Argument(..., help=SCORE_HELP),
          span: str = typer.Option("", "--span", help="the evaluated span, 16 hex characters"),
          label: Optional[str] = typer.Option(None, "--label"),
          explanation: Optional[str] = typer.Option(None, "--explanation"),
          source: str = typer.Option("human", "--source", help="human | llm-judge | heuristic | user-feedback"),
          endpoint: str = typer.Option("", "--endpoint", help="OTLP/HTTP base URL (default: from the config)"),
          header: list[str] = typer.Option([], "--header", "-H", help="KEY=VALUE, e.g. authorization=Bearer ..."),
          config: str = CONFIG_OPTION) -> None:
    """Attach a score to a trace (or one of its spans): an OTLP log event sent to the collector."""
    from pydantic import ValidationError

    from collector.scores import Score, to_logs

    score_value, score_label = parse_value(value, label)
    try:
        item = Score(name=name, trace_id=trace_id.strip().lower(), span_id=span.strip().lower() or None,
                     value=score_value, label=score_label, explanation=explanation, source=source)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'score'}: {e['msg']}" for e in exc.errors())
        err.print(f"[bold red]error[/]: {problems}")
        raise typer.Exit(2) from None
    headers = {"content-type": "application/x-protobuf"}
    for pair in header:
        key, sep, val = pair.partition("=")
        if not sep or not key.strip():
            err.print(f"[bold red]error[/]: --header {pair!r}: expected KEY=VALUE")
            raise typer.Exit(2)
        headers[key.strip().lower()] = val.strip()
    url = (endpoint or _http_endpoint(config)).rstrip("/") + "/v1/logs"
    body = to_logs([item], service_name="genaitrace-cli").to_protobuf()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers, method="POST"),
                                    timeout=10) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        err.print(f"[bold red]rejected[/]: {url} answered {exc.code}: {exc.read()[:300].decode(errors='replace')}")
        raise typer.Exit(1) from None
    except (urllib.error.URLError, OSError) as exc:
        err.print(f"[bold red]cannot send[/]: {url}: {getattr(exc, 'reason', exc)}")
        raise typer.Exit(1) from None
    shown = score_label if score_value is None else score_value
    console.print(f"score {name}={shown} sent for trace {trace_id.lower()}" + (f" span {span.lower()}" if span else ""))


def _query(client, sql: str, parameters: dict):
    from collector.query import QueryError

    try:
        return client.query(sql, parameters)
    except QueryError as exc:
        err.print(f"[bold red]query failed[/]: {exc}")
        raise typer.Exit(1) from None


def sessions(user: str = typer.Option("", "--user", help="only this user's conversations"),
             limit: int = typer.Option(50, "--limit", min=1, max=10_000),
             as_json: bool = typer.Option(False, "--json", help="one JSON array of objects"),
             config: str = CONFIG_OPTION) -> None:
    """List conversations, newest first: user, turns, cost, tokens, errors, scores."""
    client = client_or_exit(config)
    try:
        where = "WHERE user_id = {user:String}" if user else ""
        result = _query(client, SESSIONS_SQL.format(db=client.database, where=where), {"user": user, "limit": limit})
    finally:
        client.close()
    print_result(result, as_json)


def session(conversation_id: str = typer.Argument(..., help="the conversation (gen_ai.conversation.id)"),
            config: str = CONFIG_OPTION) -> None:
    """Show one conversation: its turns as a table, then each turn's trace as a tree with its scores."""
    client = client_or_exit(config)
    try:
        show_session(client, conversation_id)
    finally:
        client.close()


def show_session(client, conversation_id: str) -> None:
    """Print a conversation through `client` (a QueryClient): its turns, each turn's trace and scores."""
    turns = _query(client, TURNS_SQL.format(db=client.database), {"conversation_id": conversation_id})
    if not turns.rows:
        err.print(f"no traces found for conversation {conversation_id}")
        raise typer.Exit(1)
    turn_rows = turns.dicts()
    trace_ids = [row["TraceId"] for row in turn_rows]
    scores = _query(client, SCORES_SQL.format(db=client.database), {"trace_ids": trace_ids}).dicts()
    console.print(f"[bold]conversation {conversation_id}[/]")
    print_result(turns)
    for row in turn_rows:
        spans = _query(client, TRACE_SQL.format(db=client.database, table=client.table),
                       {"trace_id": row["TraceId"]}).dicts()
        console.print(f"\n[bold]turn {row['turn']}[/]")
        tree = trace_tree(spans, row["TraceId"])
        for item in (s for s in scores if s["TraceId"] == row["TraceId"]):
            shown = item["label"] if item["value_type"] in ("boolean", "categorical") else f"{item['value']:g}"
            where = f" on span {item['SpanId']}" if item["SpanId"] else ""
            why = f" — {item['explanation'][:80]}" if item["explanation"] else ""
            tree.add(f"[magenta]score[/] {item['name']}={shown} ({item['source'] or 'unknown'}){where}{why}")
        console.print(tree)


def register(app: typer.Typer) -> None:
    app.command()(score)
    app.command()(sessions)
    app.command()(session)
