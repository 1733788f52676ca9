"""Request bodies as the OTLP/HTTP receiver takes them: every content coding otelcol's confighttp
accepts, decoded whole and within a size limit, or refused whole.

    body = decompress(raw, request.headers.get("content-encoding", ""), limit)   # bytes, or raises

Codings (the names and the snappy rule are confighttp's):
  - `gzip`: every member of a multi-member body (RFC 1952 2.2; `cat a.gz b.gz`), not only the first;
  - `zlib` and `deflate`: the zlib format (RFC 1950), as HTTP's `deflate` is;
  - `zstd`: every frame;
  - `snappy`: the framing format when the body starts with its stream identifier, otherwise the
    block format (confighttp's auto-detection, kept for the clients of both eras);
    `x-snappy-framed`: the framing format;
  - `lz4`: the LZ4 frame format, every frame.
Errors, the whole request refused and nothing stored from it:
  - `BodyTooLarge` (HTTP 413): the decoded body would exceed `limit`. Decoding stops as soon as the
    output passes the limit, so a bomb never inflates further than `limit` + one step;
  - `PermanentError` (HTTP 400): an unknown coding, corrupt or truncated data, trailing garbage.
"""

from __future__ import annotations

import zlib
from typing import Callable

import cramjam
import lz4.frame
from backports import zstd

from collector.component import PermanentError

# Output produced per decompression step: small enough that a bomb is stopped early, large enough
# that a legitimate 64 MiB body takes a few hundred steps.
_STEP = 256 * 1024


class BodyTooLarge(PermanentError):
    """The body, as sent or once decoded, is over the configured limit (HTTP 413)."""

    http_status = 413


class UnsupportedEncoding(PermanentError):
    """A Content-Encoding the receiver does not decode (HTTP 400, as confighttp answers)."""


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """`body` decoded per its Content-Encoding header value (case-insensitive, "" or `identity` for
    none), at most `limit` bytes."""
    name = encoding.strip().lower()
    if name in ("", "identity"):
        if len(body) > limit:
            raise BodyTooLarge(f"request body of {len(body)} bytes exceeds the limit of {limit} bytes")
        return body
    decoder = DECODERS.get(name)
    if decoder is None:
        raise UnsupportedEncoding(f"unsupported Content-Encoding: {encoding!r}; supported: {', '.join(DECODERS)}")
    return decoder(body, limit)


def _too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(f"decompressed body exceeds the limit of {limit} bytes")


def _stream_members(body: bytes, limit: int, new_decompressor: Callable[[], object], what: str,
                    error: type[Exception], *, concatenated: bool = True) -> bytes:
    """Decode concatenated members/frames with zlib-style decompressors (`decompress(data,
    max_length)`, `eof`, `unused_data`): each member to its end, then the next from the bytes left
    over, until none are. `concatenated=False`: bytes after the first member are an error."""
    out = bytearray()
    rest = body
    try:
        while True:
            decompressor = new_decompressor()
            pending = rest
            while not decompressor.eof:
                chunk = decompressor.decompress(pending, _STEP)
                out += chunk
                if len(out) > limit:
                    raise _too_large(limit)
                # zlib keeps input it has not used yet in `unconsumed_tail`; zstd and lz4 inside.
                pending = getattr(decompressor, "unconsumed_tail", b"")
                if not chunk and not pending and not decompressor.eof:
                    raise PermanentError(f"invalid {what} body: truncated")
            rest = decompressor.unused_data
            if not rest:
                return bytes(out)
            if not concatenated:
                raise PermanentError(f"invalid {what} body: {len(rest)} bytes after the end of the stream")
    except error as exc:
        raise PermanentError(f"invalid {what} body: {exc}") from exc


def _gzip(body: bytes, limit: int) -> bytes:
    if not body:
        raise PermanentError("invalid gzip body: empty")
    return _stream_members(body, limit, lambda: zlib.decompressobj(16 + zlib.MAX_WBITS), "gzip", zlib.error)


def _zlib(body: bytes, limit: int) -> bytes:
    if not body:
        raise PermanentError("invalid zlib/deflate body: empty")
    return _stream_members(body, limit, lambda: zlib.decompressobj(zlib.MAX_WBITS), "zlib/deflate", zlib.error,
                           concatenated=False)


def _zstd(body: bytes, limit: int) -> bytes:
    if not body:
        raise PermanentError("invalid zstd body: empty")
    return _stream_members(body, limit, zstd.ZstdDecompressor, "zstd", zstd.ZstdError)


def _lz4(body: bytes, limit: int) -> bytes:
    if not body:
        raise PermanentError("invalid lz4 body: empty")
    return _stream_members(body, limit, lz4.frame.LZ4FrameDecompressor, "lz4", RuntimeError)


# --- snappy: decoded by cramjam in one call, after the sizes the body declares were checked --------

_SNAPPY_STREAM_ID = b"\xff\x06\x00\x00sNaPpY"


def _snappy(body: bytes, limit: int) -> bytes:
    if body.startswith(_SNAPPY_STREAM_ID):
        return _snappy_framed(body, limit)
    return _snappy_block(body, limit)


def _snappy_block(body: bytes, limit: int) -> bytes:
    # A block starts with its uncompressed length (a varint), which the decoder enforces: checking
    # it first refuses a bomb without allocating anything.
    declared, _ = _varint(body, 0, "snappy")
    if declared > limit:
        raise _too_large(limit)
    try:
        return bytes(cramjam.snappy.decompress_raw(body))
    except cramjam.DecompressionError as exc:
        raise PermanentError(f"invalid snappy body: {exc}") from exc


def _snappy_framed(body: bytes, limit: int) -> bytes:
    # Each chunk names its type and length in a 4-byte header; a compressed chunk's data (after its
    # 4-byte CRC) starts with its uncompressed length. Summing those first bounds the output.
    total, offset = 0, 0
    while offset < len(body):
        if offset + 4 > len(body):
            raise PermanentError("invalid snappy framed body: truncated chunk header")
        kind = body[offset]
        length = int.from_bytes(body[offset + 1:offset + 4], "little")
        data_start, offset = offset + 4, offset + 4 + length
        if offset > len(body):
            raise PermanentError("invalid snappy framed body: truncated chunk")
        if kind == 0x00:  # compressed data
            total += _varint(body, data_start + 4, "snappy framed")[0] if length > 4 else 0
        elif kind == 0x01:  # uncompressed data
            total += max(0, length - 4)
        if total > limit:
            raise _too_large(limit)
    try:
        return bytes(cramjam.snappy.decompress(body))
    except cramjam.DecompressionError as exc:
        raise PermanentError(f"invalid snappy framed body: {exc}") from exc


def _varint(data: bytes, offset: int, what: str) -> tuple[int, int]:
    value = shift = 0
    for index in range(offset, min(len(data), offset + 10)):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, index + 1
        shift += 7
    raise PermanentError(f"invalid {what} body: bad length header")


DECODERS: dict[str, Callable[[bytes, int], bytes]] = {
    "gzip": _gzip, "zstd": _zstd, "zlib": _zlib, "deflate": _zlib, "snappy": _snappy,
    "x-snappy-framed": _snappy_framed, "lz4": _lz4,
}
