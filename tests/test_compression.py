"""Compressed OTLP/HTTP bodies, through a real collector: every coding otelcol's confighttp accepts
(gzip with every member, zstd with every frame, snappy block and framed, lz4, zlib/deflate) is
stored whole; a bomb, however it is hidden, is refused with 413 after at most the body limit was
inflated; corrupt or trailing data and unknown codings are 400. A refused request stores nothing,
and a normal client sending meanwhile is served."""

from __future__ import annotations

import gzip
import zlib

import cramjam
import httpx
import lz4.frame
import pytest
from backports import zstd

from support.harness import CollectorProcess
from support.hostile_clients import PB, NormalClient, latency_budget
from support.otlp_load import make_request

# `alone`: the assertions measure how fast others are served (pyproject.toml's markers)
pytestmark = [pytest.mark.timeout(180), pytest.mark.alone]
BODY_LIMIT_MIB = 2


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    process = CollectorProcess(tmp_path_factory.mktemp("compression"), max_body_mib=BODY_LIMIT_MIB).start()
    process.latency_budget = latency_budget(process)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """1 GiB of zeros, gzip'd to about 1 MiB (under the 2 MiB wire limit)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    return b"".join(compressor.compress(zeros) for _ in range(1024)) + compressor.flush()


def _named_request(name: str, spans: int = 3) -> bytes:
    request, _ = make_request(spans)
    for span in request.resource_spans[0].scope_spans[0].spans:
        span.name = name
    return request.SerializeToString()


def _post(collector, body: bytes, encoding: str) -> httpx.Response:
    return httpx.post(collector.http_url, content=body, headers={**PB, "content-encoding": encoding}, timeout=30)


def _stored(collector, name: str) -> int:
    return collector.query(f"SELECT count() AS n FROM otel.otel_traces WHERE SpanName = '{name}'")[0]["n"]


def _wait_stored(collector, name: str, count: int) -> None:
    collector.wait_for_rows(f"SELECT count() AS n FROM otel.otel_traces WHERE SpanName = '{name}'",
                            lambda rows: rows[0]["n"] == count, timeout=30)


def _assert_nothing_stored(collector, name: str) -> None:
    """`name` never arrives: a request sent after it is stored first, so the pipeline had its chance."""
    marker = f"{name}-after"
    assert httpx.post(collector.http_url, content=_named_request(marker), headers=PB, timeout=30).status_code == 200
    _wait_stored(collector, marker, 3)
    assert _stored(collector, name) == 0


_CODINGS = {
    "gzip, two members": ("gzip", lambda a, b: gzip.compress(a) + gzip.compress(b)),
    "zstd, two frames": ("zstd", lambda a, b: zstd.compress(a) + zstd.compress(b)),
    "snappy block": ("snappy", lambda a, b: bytes(cramjam.snappy.compress_raw(a + b))),
    "snappy framed": ("snappy", lambda a, b: bytes(cramjam.snappy.compress(a + b))),
    "x-snappy-framed": ("x-snappy-framed", lambda a, b: bytes(cramjam.snappy.compress(a + b))),
    "lz4, two frames": ("lz4", lambda a, b: lz4.frame.compress(a) + lz4.frame.compress(b)),
    "deflate (zlib format)": ("deflate", lambda a, b: zlib.compress(a + b)),
    "zlib": ("zlib", lambda a, b: zlib.compress(a + b)),
    "GZIP in capitals": ("GZIP", lambda a, b: gzip.compress(a + b)),
}


@pytest.mark.parametrize("case", list(_CODINGS))
def test_every_coding_is_stored_whole(collector, case):
    """Two protobuf requests, concatenated before compressing or compressed apiece and the results
    concatenated: one request of the spans of both (protobuf's concatenation is a merge), all stored."""
    encoding, compress = _CODINGS[case]
    name = "coding-" + case.replace(" ", "-").replace(",", "").replace("(", "").replace(")", "")
    body = compress(_named_request(name, 3), _named_request(name, 4))
    response = _post(collector, body, encoding)
    assert response.status_code == 200, (response.status_code, response.content[:200])
    _wait_stored(collector, name, 7)


def test_a_valid_gzip_member_followed_by_a_bomb_is_refused_whole(collector, gzip_bomb):
    """RFC 1952 members, the first one valid, the second 1 GiB of zeros: 413, and the first one's
    spans are not stored either; a normal client is served meanwhile."""
    with NormalClient(collector) as normal:
        body = gzip.compress(_named_request("member-before-bomb")) + gzip_bomb
        response = _post(collector, body, "gzip")
        normal.keep_sending_until(5)
    assert response.status_code == 413, (response.status_code, response.content[:200])
    assert b"decompressed body exceeds the limit" in response.content
    normal.assert_served(collector.latency_budget)
    _assert_nothing_stored(collector, "member-before-bomb")


@pytest.mark.parametrize("encoding, bomb", [
    ("gzip", lambda: gzip.compress(bytes(64 << 20), 1)),
    ("zstd", lambda: zstd.compress(bytes(256 << 20))),
    ("lz4", lambda: lz4.frame.compress(bytes(64 << 20))),
    ("deflate", lambda: zlib.compress(bytes(64 << 20), 1)),
    ("snappy", lambda: bytes(cramjam.snappy.compress_raw(bytes(32 << 20)))),
    ("x-snappy-framed", lambda: bytes(cramjam.snappy.compress(bytes(32 << 20)))),
], ids=["gzip", "zstd", "lz4", "deflate", "snappy-block", "snappy-framed"])
def test_bombs_are_refused_with_413(collector, encoding, bomb):
    body = bomb()
    assert len(body) < BODY_LIMIT_MIB << 20  # the wire size passes; only the decoded size is too large
    with NormalClient(collector) as normal:
        response = _post(collector, body, encoding)
        normal.keep_sending_until(5)
    assert response.status_code == 413, (response.status_code, response.content[:200])
    normal.assert_served(collector.latency_budget)


def test_valid_member_then_garbage_is_refused_whole(collector):
    body = gzip.compress(_named_request("member-before-garbage")) + b"this is not gzip"
    response = _post(collector, body, "gzip")
    assert response.status_code == 400 and b"invalid gzip body" in response.content, response.content[:200]
    _assert_nothing_stored(collector, "member-before-garbage")


def test_valid_member_then_truncated_member_is_refused_whole(collector):
    body = gzip.compress(_named_request("member-before-truncated")) + gzip.compress(_named_request("x"))[:25]
    response = _post(collector, body, "gzip")
    assert response.status_code == 400, response.content[:200]
    _assert_nothing_stored(collector, "member-before-truncated")


@pytest.mark.parametrize("encoding, body", [
    ("br", b"anything"),
    ("gzip, zstd", b"anything"),
    ("zstd", b"not zstd at all"),
    ("snappy", b"\x05\xff\xfe\xfd"),  # declares 5 bytes, then no valid snappy element
    ("x-snappy-framed", b"\xff\x06\x00\x00sNaPpY\x00\x05\x00\x00bad!!"),
    ("lz4", b"not lz4"),
    ("deflate", zlib.compress(b"abc") + b"trailing"),
    ("zstd", b""),
], ids=["unknown", "stacked", "zstd-garbage", "snappy-garbage", "snappy-framed-garbage", "lz4-garbage",
        "deflate-trailing", "zstd-empty"])
def test_bad_compressed_bodies_get_400_with_a_message(collector, encoding, body):
    response = _post(collector, body, encoding)
    assert response.status_code == 400, (response.status_code, response.content[:200])
    assert b"Traceback" not in response.content
    assert httpx.post(collector.http_url, content=_named_request("after-bad-coding"), headers=PB, timeout=30).status_code == 200


def test_compression_algorithms_can_be_narrowed(tmp_path):
    """confighttp's `compression_algorithms`: a coding not listed is refused (400) even if known."""
    from support.harness import CONFIG_TEMPLATE

    config = CONFIG_TEMPLATE.replace("        max_request_body_size_mib: {max_body_mib}\n",
                                     "        max_request_body_size_mib: {max_body_mib}\n        compression_algorithms: [gzip]\n")
    with CollectorProcess(tmp_path, config_text=config) as narrowed:
        assert _post(narrowed, gzip.compress(_named_request("narrowed")), "gzip").status_code == 200
        refused = _post(narrowed, zstd.compress(_named_request("narrowed")), "zstd")
        assert refused.status_code == 400 and b"unsupported Content-Encoding" in refused.content
