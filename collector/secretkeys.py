"""Keys whose values are secrets whatever the value looks like: one list for the config loader (a
credential field must not silently become empty) and the `redaction` processor (the value of such
an attribute is replaced, not scanned).

A key matches on its last dotted segment, case-insensitive, with `-` read as `_`: so
`http.request.header.authorization`, `db.password`, `AWS_SECRET_ACCESS_KEY`, `x-api-key` and
`env.OPENAI_API_KEY` all match; `gen_ai.usage.input_tokens` and `tls.key_file` do not.
"""

from __future__ import annotations

# Exact names (after lower-casing and `-` -> `_`).
SECRET_KEY_NAMES: frozenset[str] = frozenset({
    "password", "passwd", "pwd", "passphrase",
    "secret", "client_secret", "secret_key", "secret_access_key", "aws_secret_access_key",
    "token", "access_token", "refresh_token", "id_token", "session_token", "aws_session_token",
    "auth_token", "api_token", "bearer_token", "private_token", "csrf_token", "xsrf_token",
    "github_token", "gitlab_token", "hf_token", "slack_token",
    "authorization", "proxy_authorization", "www_authenticate",
    "cookie", "set_cookie",
    "api_key", "apikey", "x_api_key", "private_key", "signing_key", "encryption_key",
    "credential", "credentials", "connection_string", "dsn",
})

# Name endings that make any key a secret (`openai_api_key`, `db_password`, `github_access_token`).
SECRET_KEY_SUFFIXES: tuple[str, ...] = (
    "_password", "_passwd", "_secret", "_api_key", "_apikey", "_secret_key", "_access_key", "_private_key",
    "_access_token", "_auth_token", "_session_token", "_refresh_token", "_bearer_token", "_api_token",
)


def key_name(key: str) -> str:
    """The part of a key that decides: its last dotted segment, lower-cased, `-` as `_`."""
    return key.rpartition(".")[2].strip().lower().replace("-", "_")


def is_secret_key(key: str, extra: frozenset[str] = frozenset()) -> bool:
    name = key_name(key)
    return name in SECRET_KEY_NAMES or name in extra or name.endswith(SECRET_KEY_SUFFIXES)
