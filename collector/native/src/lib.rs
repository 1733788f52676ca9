//! Native paths for the collector's OTLP trace handling: the extension module
//! `collector.native.genaitrace_native` (built by the package's maturin build), used through
//! `collector.native`.
//!
//! * `arrow_columns`: an ExportTraceServiceRequest -> the raw Arrow buffers of the `otel_traces`
//!   table (`collector.storage.columns.ARROW_SCHEMA`). The Python glue wraps the buffers zero-copy.
//! * `scan`: a conservative pre-filter naming the spans the Python validation and GenAI
//!   normaliser must look at, so they can skip every other span.
//! * `genai_rows` / `apply_patches` (wire.rs): the GenAI spans as Python rows for the processors,
//!   and their changes written back into the serialized payload.
//!
//! This crate is the one implementation of these stages: the Python side only wraps their results
//! (`collector/pdata.py`, `collector/storage/columns.py`, `collector/receivers/validation.py`).
//! It is a leaf: Python callables it needs (the JSON rendering of nested values, base64 of bytes)
//! and the `otel_traces` column order are passed in by the caller.
//! Built by maturin (`pyproject.toml` beside this file) with pyo3 0.30 and prost 0.14.

use std::collections::HashMap;
use std::io::Write;

use prost::Message;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};

mod wire;

use otlp::any_value::Value;
use otlp::{AnyValue, ExportTraceServiceRequest, KeyValue, Span};

// --- OTLP messages ------------------------------------------------------------------------------

/// The subset of opentelemetry-proto we read, declared by hand (no protoc, no prost-build offline).
/// Field numbers from trace.proto, common.proto and resource.proto; fields we never read are left
/// out and skipped by prost as unknown fields.
#[allow(clippy::enum_variant_names)] // names as in the .proto files
mod otlp {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportTraceServiceRequest {
        #[prost(message, repeated, tag = "1")]
        pub resource_spans: Vec<ResourceSpans>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceSpans {
        #[prost(message, optional, tag = "1")]
        pub resource: Option<Resource>,
        #[prost(message, repeated, tag = "2")]
        pub scope_spans: Vec<ScopeSpans>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Resource {
        #[prost(message, repeated, tag = "1")]
        pub attributes: Vec<KeyValue>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InstrumentationScope {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub version: String,
        #[prost(message, repeated, tag = "3")]
        pub attributes: Vec<KeyValue>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ScopeSpans {
        #[prost(message, optional, tag = "1")]
        pub scope: Option<InstrumentationScope>,
        #[prost(message, repeated, tag = "2")]
        pub spans: Vec<Span>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Status {
        #[prost(string, tag = "2")]
        pub message: String,
        #[prost(int32, tag = "3")]
        pub code: i32,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Event {
        #[prost(fixed64, tag = "1")]
        pub time_unix_nano: u64,
        #[prost(string, tag = "2")]
        pub name: String,
        #[prost(message, repeated, tag = "3")]
        pub attributes: Vec<KeyValue>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Link {
        #[prost(bytes = "vec", tag = "1")]
        pub trace_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub span_id: Vec<u8>,
        #[prost(string, tag = "3")]
        pub trace_state: String,
        #[prost(message, repeated, tag = "4")]
        pub attributes: Vec<KeyValue>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Span {
        #[prost(bytes = "vec", tag = "1")]
        pub trace_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub span_id: Vec<u8>,
        #[prost(string, tag = "3")]
        pub trace_state: String,
        #[prost(bytes = "vec", tag = "4")]
        pub parent_span_id: Vec<u8>,
        #[prost(string, tag = "5")]
        pub name: String,
        #[prost(int32, tag = "6")]
        pub kind: i32,
        #[prost(fixed64, tag = "7")]
        pub start_time_unix_nano: u64,
        #[prost(fixed64, tag = "8")]
        pub end_time_unix_nano: u64,
        #[prost(message, repeated, tag = "9")]
        pub attributes: Vec<KeyValue>,
        #[prost(message, repeated, tag = "11")]
        pub events: Vec<Event>,
        #[prost(message, repeated, tag = "13")]
        pub links: Vec<Link>,
        #[prost(message, optional, tag = "15")]
        pub status: Option<Status>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValue {
        #[prost(string, tag = "1")]
        pub key: String,
        // A full message, not raw bytes: a value field repeated on the wire must merge as protobuf
        // (and Python) merge it. The rare values rendered in Python are re-encoded instead.
        #[prost(message, optional, tag = "2")]
        pub value: Option<AnyValue>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AnyValue {
        #[prost(oneof = "any_value::Value", tags = "1, 2, 3, 4, 5, 6, 7")]
        pub value: Option<any_value::Value>,
    }
    pub mod any_value {
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            #[prost(string, tag = "1")]
            StringValue(String),
            #[prost(bool, tag = "2")]
            BoolValue(bool),
            #[prost(int64, tag = "3")]
            IntValue(i64),
            #[prost(double, tag = "4")]
            DoubleValue(f64),
            #[prost(message, tag = "5")]
            ArrayValue(super::ArrayValue),
            #[prost(message, tag = "6")]
            KvlistValue(super::KeyValueList),
            #[prost(bytes = "vec", tag = "7")]
            BytesValue(Vec<u8>),
        }
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ArrayValue {
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<AnyValue>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValueList {
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<KeyValue>,
    }
}

/// Decodes without the GIL: the decode is most of the work, and other threads may run meanwhile.
/// Several concatenated requests decode as their merge (resource_spans appended), as in Python.
fn decode(py: Python<'_>, data: &[u8]) -> PyResult<ExportTraceServiceRequest> {
    py.detach(|| ExportTraceServiceRequest::decode(data))
        .map_err(|e| PyValueError::new_err(e.to_string()))
}

// --- Arrow buffers ------------------------------------------------------------------------------

/// An Arrow offsets buffer: little-endian i32, starting at 0, one entry per row plus one.
struct Offsets {
    bytes: Vec<u8>,
    last: usize,
}

impl Offsets {
    fn new() -> Self {
        let mut offsets = Offsets { bytes: Vec::new(), last: 0 };
        offsets.push(0);
        offsets
    }

    /// Ends a row at `end` (children so far). Offsets only grow, so `finish` checks the last one.
    fn push(&mut self, end: usize) {
        self.last = end;
        self.bytes.extend_from_slice(&(end as i32).to_le_bytes());
    }

    fn finish(self) -> PyResult<Vec<u8>> {
        if self.last > i32::MAX as usize {
            return Err(PyValueError::new_err("batch too large for 32-bit Arrow offsets"));
        }
        Ok(self.bytes)
    }
}

/// An Arrow utf8 column: offsets, then the concatenated UTF-8 bytes.
struct Strings {
    offsets: Offsets,
    data: Vec<u8>,
}

impl Strings {
    fn new() -> Self {
        Strings { offsets: Offsets::new(), data: Vec::new() }
    }

    fn push(&mut self, text: &str) {
        self.data.extend_from_slice(text.as_bytes());
        self.close();
    }

    /// Lowercase hex of an id, as Python's `bytes.hex()` (empty for an empty id).
    fn push_hex(&mut self, raw: &[u8]) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        for byte in raw {
            self.data.push(DIGITS[(byte >> 4) as usize]);
            self.data.push(DIGITS[(byte & 15) as usize]);
        }
        self.close();
    }

    /// Ends the value written straight into `data` since the previous one.
    fn close(&mut self) {
        self.offsets.push(self.data.len());
    }

    fn len(&self) -> usize {
        self.offsets.bytes.len() / 4 - 1
    }

    /// Offsets, then data.
    fn finish(self) -> PyResult<Vec<Vec<u8>>> {
        Ok(vec![self.offsets.finish()?, self.data])
    }
}

/// An Arrow `map<string, string>` column: map offsets, then the key and value string columns.
struct Maps {
    offsets: Offsets,
    keys: Strings,
    values: Strings,
}

impl Maps {
    fn new() -> Self {
        Maps { offsets: Offsets::new(), keys: Strings::new(), values: Strings::new() }
    }

    fn push(&mut self, attributes: &[KeyValue], render: &mut Render) -> PyResult<()> {
        for kv in attributes {
            self.keys.push(&kv.key);
            render.value(kv.value.as_ref(), &mut self.values.data)?;
            self.values.close();
        }
        self.offsets.push(self.keys.len());
        Ok(())
    }

    /// A map whose values were rendered earlier (a resource's, repeated on each of its spans).
    fn push_rendered(&mut self, pairs: &[(&str, String)]) {
        for (key, value) in pairs {
            self.keys.push(key);
            self.values.push(value);
        }
        self.offsets.push(self.keys.len());
    }

    /// Map offsets, then the keys' and the values' buffers.
    fn finish(self) -> PyResult<Vec<Vec<u8>>> {
        let mut buffers = vec![self.offsets.finish()?];
        buffers.extend(self.keys.finish()?);
        buffers.extend(self.values.finish()?);
        Ok(buffers)
    }
}

fn push_i64(buffer: &mut Vec<u8>, value: i64) {
    buffer.extend_from_slice(&value.to_le_bytes());
}

// --- attribute values as text -------------------------------------------------------------------

/// Renders values as `collector.pdata.any_value_to_str` does. Bytes, arrays and maps are rendered
/// by the Python `render` callable (JSON rendering stays one Python implementation); they are rare,
/// so they are collected first (`Render::collect`), rendered in one go with the GIL
/// (`Render::render_collected`), and looked up by their serialization while the columns are filled
/// without it. A value that was not collected is noted in `missing` (the fill is then redone).
#[derive(Default)]
struct Render {
    rendered: HashMap<Vec<u8>, String>,
    missing: Vec<Vec<u8>>,
}

impl Render {
    fn needs_python(any: &AnyValue) -> bool {
        !matches!(
            any.value,
            None | Some(Value::StringValue(_)) | Some(Value::IntValue(_)) | Some(Value::BoolValue(_)) | Some(Value::DoubleValue(_))
        )
    }

    /// Notes the values of `attributes` that only Python renders.
    fn collect(&mut self, attributes: &[KeyValue]) {
        for any in attributes.iter().filter_map(|kv| kv.value.as_ref()) {
            if Self::needs_python(any) {
                let raw = any.encode_to_vec();
                if !self.rendered.contains_key(&raw) {
                    self.missing.push(raw);
                }
            }
        }
    }

    /// Every value of the request that only Python renders (`missing`, for `render_collected`).
    fn collect_request(&mut self, request: &ExportTraceServiceRequest) {
        for rs in &request.resource_spans {
            if let Some(resource) = &rs.resource {
                self.collect(&resource.attributes);
            }
            for span in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
                self.collect(&span.attributes);
                for event in &span.events {
                    self.collect(&event.attributes);
                }
                for link in &span.links {
                    self.collect(&link.attributes);
                }
            }
        }
    }

    /// Renders the `missing` values with the Python `render` callable (with the GIL).
    fn render_collected(&mut self, render: &Bound<'_, PyAny>) -> PyResult<()> {
        for raw in std::mem::take(&mut self.missing) {
            if self.rendered.contains_key(&raw) {
                continue;
            }
            // The value's own serialization, for `AnyValue.FromString` on the Python side.
            let text = render.call1((PyBytes::new(render.py(), &raw),))?;
            let text = text.cast::<PyString>()?.to_str()?.to_owned();
            self.rendered.insert(raw, text);
        }
        Ok(())
    }

    fn value(&mut self, value: Option<&AnyValue>, out: &mut Vec<u8>) -> PyResult<()> {
        let any = match value {
            Some(any) => any,
            None => return Ok(()), // a KeyValue without a value: an unset AnyValue, ""
        };
        match &any.value {
            None => {}
            Some(Value::StringValue(text)) => out.extend_from_slice(text.as_bytes()),
            Some(Value::IntValue(number)) => write!(out, "{}", number)?,
            Some(Value::BoolValue(flag)) => out.extend_from_slice(if *flag { b"true" } else { b"false" }),
            Some(Value::DoubleValue(number)) => write_double(out, *number),
            Some(_) => {
                let raw = any.encode_to_vec();
                match self.rendered.get(&raw) {
                    Some(text) => out.extend_from_slice(text.as_bytes()),
                    None => self.missing.push(raw),
                }
            }
        }
        Ok(())
    }
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)` (`collector.pdata.format_double`): the shortest
/// digits that read back as `number`, positionally. Rust's `Display` prints exactly that, except
/// when `number` lies exactly halfway between two shortest candidates: Python (and Go) then take
/// the even last digit, Rust's choice differs between versions. `tie_to_even` fixes those.
fn write_double(out: &mut Vec<u8>, number: f64) {
    if number.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if number.is_infinite() {
        out.extend_from_slice(if number > 0.0 { b"+Inf" } else { b"-Inf" });
    } else {
        let shortest = number.to_string();
        let text = tie_to_even(number, &shortest).unwrap_or(shortest);
        out.extend_from_slice(text.as_bytes());
    }
}

/// A non-negative decimal `0.DIGITS × 10^point`, digits without leading or trailing zeros.
struct Decimal {
    digits: Vec<u8>,
    point: i32,
}

impl Decimal {
    /// From positional text ("120", "0.0125", "3.5"); the sign is the caller's business.
    fn parse(text: &str) -> Decimal {
        let (whole, fraction) = match text.find('.') {
            Some(dot) => (&text[..dot], &text[dot + 1..]),
            None => (text, ""),
        };
        let mut digits: Vec<u8> = whole.bytes().chain(fraction.bytes()).map(|c| c - b'0').collect();
        let leading = digits.iter().take_while(|&&d| d == 0).count();
        digits.drain(..leading);
        while digits.last() == Some(&0) {
            digits.pop();
        }
        Decimal { digits, point: whole.len() as i32 - leading as i32 }
    }

    /// Adds one unit in the last digit (`0.15` -> `0.16`, `0.99` -> `1`).
    fn round_up(mut self) -> Decimal {
        while let Some(last) = self.digits.pop() {
            if last < 9 {
                self.digits.push(last + 1);
                return self;
            }
        }
        Decimal { digits: vec![1], point: self.point + 1 }
    }

    fn to_text(&self, negative: bool) -> String {
        let digits: String = self.digits.iter().map(|d| char::from(b'0' + d)).collect();
        let sign = if negative { "-" } else { "" };
        let (len, point) = (digits.len() as i32, self.point);
        if point <= 0 {
            format!("{}0.{}{}", sign, "0".repeat(-point as usize), digits)
        } else if point >= len {
            format!("{}{}{}", sign, digits, "0".repeat((point - len) as usize))
        } else {
            format!("{}{}.{}", sign, &digits[..point as usize], &digits[point as usize..])
        }
    }
}

/// The exact decimal value of a finite positive double, when it has few enough digits (at most
/// 38 after the integer part) for a rounding tie to be possible at all; None otherwise.
fn exact_decimal(magnitude: f64) -> Option<Decimal> {
    let bits = magnitude.to_bits();
    let (biased, fraction) = ((bits >> 52) & 0x7ff, bits & ((1 << 52) - 1));
    let (mut mantissa, mut exponent) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1 << 52), biased as i32 - 1075)
    };
    if mantissa == 0 {
        return None;
    }
    let zeros = mantissa.trailing_zeros();
    mantissa >>= zeros;
    exponent += zeros as i32;
    if exponent >= 0 {
        // An integer: `{:.0}` prints all its digits exactly, with nothing to round.
        return Some(Decimal::parse(&format!("{:.0}", magnitude)));
    }
    // mantissa × 2^-k = mantissa × 5^k / 10^k
    let k = (-exponent) as u32;
    let scaled = 5u128.checked_pow(k).and_then(|p| p.checked_mul(mantissa as u128))?;
    let digits = scaled.to_string();
    let point = digits.len() as i32 - k as i32;
    let mut exact = Decimal::parse(&digits);
    exact.point = point;
    Some(exact)
}

/// The round-half-even shortest text when `number` is exactly halfway between the two shortest
/// candidates and `shortest` (Rust's) took the odd one; None when `shortest` is already right.
fn tie_to_even(number: f64, shortest: &str) -> Option<String> {
    let exact = exact_decimal(number.abs())?;
    let n = Decimal::parse(shortest.trim_start_matches('-')).digits.len();
    // A tie: the exact value is the n shortest digits followed by a single 5.
    if n == 0 || exact.digits.len() != n + 1 || exact.digits[n] != 5 {
        return None;
    }
    let mut down = Decimal { digits: exact.digits[..n].to_vec(), point: exact.point };
    let even_down = down.digits[n - 1] % 2 == 0;
    while down.digits.last() == Some(&0) {
        down.digits.pop();
    }
    let even = if even_down { down } else { down.round_up() };
    let text = even.to_text(number.is_sign_negative());
    // Only if the even candidate reads back as `number` (otherwise the other one is the answer).
    if text != shortest && text.parse::<f64>().ok() == Some(number) {
        Some(text)
    } else {
        None
    }
}

// --- arrow_columns ------------------------------------------------------------------------------

const KIND_NAMES: [&str; 6] = ["Unspecified", "Internal", "Server", "Client", "Producer", "Consumer"];
const STATUS_NAMES: [&str; 3] = ["Unset", "Ok", "Error"];

/// An enum's name, or the first (default) name when the number is out of range, as columns.py.
fn enum_name(names: &[&'static str], number: i32) -> &'static str {
    usize::try_from(number).ok().and_then(|i| names.get(i)).copied().unwrap_or(names[0])
}

/// What a span's row takes from its resource and scope.
struct SpanContext<'a> {
    service: &'a str,
    resource: &'a [(&'a str, String)],
    scope_name: &'a str,
    scope_version: &'a str,
}

/// The per-event columns (`Events.*`): per span an offset into them.
struct Events {
    offsets: Offsets,
    time: Vec<u8>,
    name: Strings,
    attributes: Maps,
}

/// The per-link columns (`Links.*`): per span an offset into them.
struct Links {
    offsets: Offsets,
    trace_id: Strings,
    span_id: Strings,
    trace_state: Strings,
    attributes: Maps,
}

/// Every column of `ARROW_SCHEMA`, filled one span at a time.
struct Columns {
    timestamp: Vec<u8>,
    trace_id: Strings,
    span_id: Strings,
    parent_span_id: Strings,
    trace_state: Strings,
    name: Strings,
    kind: Strings,
    service: Strings,
    resource: Maps,
    scope_name: Strings,
    scope_version: Strings,
    attributes: Maps,
    duration: Vec<u8>,
    status_code: Strings,
    status_message: Strings,
    events: Events,
    links: Links,
}

impl Columns {
    fn new() -> Self {
        Columns {
            timestamp: Vec::new(),
            trace_id: Strings::new(),
            span_id: Strings::new(),
            parent_span_id: Strings::new(),
            trace_state: Strings::new(),
            name: Strings::new(),
            kind: Strings::new(),
            service: Strings::new(),
            resource: Maps::new(),
            scope_name: Strings::new(),
            scope_version: Strings::new(),
            attributes: Maps::new(),
            duration: Vec::new(),
            status_code: Strings::new(),
            status_message: Strings::new(),
            events: Events {
                offsets: Offsets::new(),
                time: Vec::new(),
                name: Strings::new(),
                attributes: Maps::new(),
            },
            links: Links {
                offsets: Offsets::new(),
                trace_id: Strings::new(),
                span_id: Strings::new(),
                trace_state: Strings::new(),
                attributes: Maps::new(),
            },
        }
    }

    fn fill(&mut self, request: &ExportTraceServiceRequest, render: &mut Render) -> PyResult<()> {
        for rs in &request.resource_spans {
            // Rendered once per resource, then copied onto each of its spans.
            let mut resource = Vec::new();
            if let Some(r) = &rs.resource {
                for kv in &r.attributes {
                    let mut text = Vec::new();
                    render.value(kv.value.as_ref(), &mut text)?;
                    // Every rendering is UTF-8 (from UTF-8 strings or a Python str).
                    resource.push((kv.key.as_str(), String::from_utf8(text).unwrap_or_default()));
                }
            }
            let service = resource.iter().find(|(key, _)| *key == "service.name").map_or("", |(_, v)| v.as_str());
            for ss in &rs.scope_spans {
                let scope = ss.scope.as_ref();
                let context = SpanContext {
                    service,
                    resource: &resource,
                    scope_name: scope.map_or("", |s| s.name.as_str()),
                    scope_version: scope.map_or("", |s| s.version.as_str()),
                };
                for span in &ss.spans {
                    self.push_span(span, &context, render)?;
                }
            }
        }
        Ok(())
    }

    fn push_span(&mut self, span: &Span, context: &SpanContext, render: &mut Render) -> PyResult<()> {
        let (start, end) = (span.start_time_unix_nano, span.end_time_unix_nano);
        // Arrow timestamps are i64: a time past 2262 wraps (validation repairs such times earlier).
        push_i64(&mut self.timestamp, start as i64);
        self.duration.extend_from_slice(&end.saturating_sub(start).to_le_bytes()); // 0 if end <= start
        self.trace_id.push_hex(&span.trace_id);
        self.span_id.push_hex(&span.span_id);
        self.parent_span_id.push_hex(&span.parent_span_id);
        self.trace_state.push(&span.trace_state);
        self.name.push(&span.name);
        self.kind.push(enum_name(&KIND_NAMES, span.kind));
        self.service.push(context.service);
        self.resource.push_rendered(context.resource);
        self.scope_name.push(context.scope_name);
        self.scope_version.push(context.scope_version);
        self.attributes.push(&span.attributes, render)?;
        let status = span.status.as_ref();
        self.status_code.push(enum_name(&STATUS_NAMES, status.map_or(0, |s| s.code)));
        self.status_message.push(status.map_or("", |s| s.message.as_str()));
        self.push_events(span, render)?;
        self.push_links(span, render)
    }

    fn push_events(&mut self, span: &Span, render: &mut Render) -> PyResult<()> {
        let events = &mut self.events;
        for event in &span.events {
            push_i64(&mut events.time, event.time_unix_nano as i64);
            events.name.push(&event.name);
            events.attributes.push(&event.attributes, render)?;
        }
        events.offsets.push(events.name.len());
        Ok(())
    }

    fn push_links(&mut self, span: &Span, render: &mut Render) -> PyResult<()> {
        let links = &mut self.links;
        for link in &span.links {
            links.trace_id.push_hex(&link.trace_id);
            links.span_id.push_hex(&link.span_id);
            links.trace_state.push(&link.trace_state);
            links.attributes.push(&link.attributes, render)?;
        }
        links.offsets.push(links.trace_id.len());
        Ok(())
    }

    /// The buffers of each column in `names`, in that order: per column its Arrow buffers, as
    /// `collector.storage.columns` reads them by the column's type (a list column's own copy of
    /// the shared offsets, then its values' buffers). The order is the caller's (the one column
    /// definition, in Python); a name this crate does not build is an error.
    fn finish(self, names: &[String]) -> PyResult<Vec<Vec<u8>>> {
        let (events, links) = (self.events, self.links);
        let (event_offsets, link_offsets) = (events.offsets.finish()?, links.offsets.finish()?);
        let list = |offsets: &Vec<u8>, values: Vec<Vec<u8>>| {
            let mut buffers = vec![offsets.clone()];
            buffers.extend(values);
            buffers
        };
        let mut built: Vec<(&str, Option<Vec<Vec<u8>>>)> = vec![
            ("Timestamp", Some(vec![self.timestamp])),
            ("TraceId", Some(self.trace_id.finish()?)),
            ("SpanId", Some(self.span_id.finish()?)),
            ("ParentSpanId", Some(self.parent_span_id.finish()?)),
            ("TraceState", Some(self.trace_state.finish()?)),
            ("SpanName", Some(self.name.finish()?)),
            ("SpanKind", Some(self.kind.finish()?)),
            ("ServiceName", Some(self.service.finish()?)),
            ("ResourceAttributes", Some(self.resource.finish()?)),
            ("ScopeName", Some(self.scope_name.finish()?)),
            ("ScopeVersion", Some(self.scope_version.finish()?)),
            ("SpanAttributes", Some(self.attributes.finish()?)),
            ("Duration", Some(vec![self.duration])),
            ("StatusCode", Some(self.status_code.finish()?)),
            ("StatusMessage", Some(self.status_message.finish()?)),
            ("Events.Timestamp", Some(list(&event_offsets, vec![events.time]))),
            ("Events.Name", Some(list(&event_offsets, events.name.finish()?))),
            ("Events.Attributes", Some(list(&event_offsets, events.attributes.finish()?))),
            ("Links.TraceId", Some(list(&link_offsets, links.trace_id.finish()?))),
            ("Links.SpanId", Some(list(&link_offsets, links.span_id.finish()?))),
            ("Links.TraceState", Some(list(&link_offsets, links.trace_state.finish()?))),
            ("Links.Attributes", Some(list(&link_offsets, links.attributes.finish()?))),
        ];
        let mut out = Vec::with_capacity(names.len() * 4);
        for name in names {
            let column = built.iter_mut().find(|(built_name, _)| built_name == name);
            match column.and_then(|(_, buffers)| buffers.take()) {
                Some(buffers) => out.extend(buffers),
                None => return Err(PyValueError::new_err(format!("no column {:?} (or asked twice)", name))),
            }
        }
        Ok(out)
    }
}

/// Serialized ExportTraceServiceRequest(s) -> `(rows, buffers)`: one row per span, and the Arrow
/// buffers of the columns named in `columns`, in that order.
///
/// `render(raw)` renders a bytes / array / kvlist AnyValue from its serialization. A malformed
/// payload (bad protobuf, invalid UTF-8) raises ValueError.
#[pyfunction]
fn arrow_columns<'py>(
    py: Python<'py>,
    data: &[u8],
    render: &Bound<'py, PyAny>,
    columns: Vec<String>,
) -> PyResult<(usize, Bound<'py, PyList>)> {
    let request = decode(py, data)?;
    let mut values = Render::default();
    py.detach(|| values.collect_request(&request));
    // Filled without the GIL: the receiver's and the processors' threads run Python meanwhile.
    let (rows, buffers) = loop {
        values.render_collected(render)?;
        let filled = py.detach(|| fill_columns(&request, &mut values, &columns))?;
        if values.missing.is_empty() {
            break filled; // else a value `collect_request` did not visit: rendered, and filled again
        }
    };
    // The decoded batch is ~30 allocations per span: freeing them under the GIL held it for
    // milliseconds per batch.
    py.detach(move || drop((request, values)));
    let buffers = buffers.into_iter().map(|data| Buffer { data });
    Ok((rows, PyList::new(py, buffers.map(|buffer| Py::new(py, buffer)).collect::<PyResult<Vec<_>>>()?)?))
}

/// One Arrow buffer handed to Python without a copy: Python reads the bytes through the buffer
/// protocol (`pyarrow.py_buffer` wraps it and keeps it alive). Copying them into `bytes` under the
/// GIL (~7.5 MB per 8k-span batch, fresh pages each time) held the GIL for milliseconds per batch.
#[pyclass(frozen, module = "collector.native.genaitrace_native")]
struct Buffer {
    data: Vec<u8>,
}

#[pymethods]
impl Buffer {
    /// Read-only, contiguous bytes: the buffer lives as long as this object, which the view holds.
    unsafe fn __getbuffer__(slf: Bound<'_, Self>, view: *mut pyo3::ffi::Py_buffer, flags: std::os::raw::c_int) -> PyResult<()> {
        let data = &slf.get().data;
        let filled = pyo3::ffi::PyBuffer_FillInfo(
            view,
            slf.as_ptr(),
            data.as_ptr() as *mut std::os::raw::c_void,
            data.len() as pyo3::ffi::Py_ssize_t,
            1,
            flags,
        );
        if filled == -1 {
            return Err(PyErr::fetch(slf.py()));
        }
        Ok(())
    }
}

/// The row count and the Arrow buffers of `columns`, every value rendered as far as `values` can.
fn fill_columns(
    request: &ExportTraceServiceRequest,
    values: &mut Render,
    columns: &[String],
) -> PyResult<(usize, Vec<Vec<u8>>)> {
    let mut built = Columns::new();
    built.fill(request, values)?;
    let rows = built.timestamp.len() / 8;
    Ok((rows, built.finish(columns)?))
}

// --- scan ---------------------------------------------------------------------------------------

/// The validation settings `scan` checks against (see `collector/receivers/validation.py`).
struct Limits {
    value_bytes: usize, // 0 = no limit
    depth: usize,       // arrays/maps nested deeper than this are cut
    name_bytes: usize,  // 0 = no limit
    min_time: u64,
    max_time: u64,
}

/// The longest JSON text of an int, double, bool or null value (`-2.2250738585072014e-308`).
/// Python cuts the *text* of any value whose encoding is over the limit, and an encoding can carry
/// unknown fields Python counts and prost drops: below this limit, every scalar is suspect.
const SCALAR_TEXT_MAX: usize = 24;

impl Limits {
    /// Could `_limit_attributes` change this value? Strings and bytes when their encoding is over
    /// the limit; arrays and maps when nested deeper than the depth limit, or when their JSON text
    /// could be over the size limit (Python cuts the text, not the encoding).
    fn value_suspect(&self, value: Option<&AnyValue>) -> bool {
        let any = match value {
            Some(any) => any,
            None => return self.value_bytes > 0 && self.value_bytes < SCALAR_TEXT_MAX,
        };
        let size = match &any.value {
            Some(Value::ArrayValue(_)) | Some(Value::KvlistValue(_)) => {
                if nesting(any) > self.depth {
                    return true;
                }
                json_text_bound(any.encoded_len())
            }
            Some(Value::StringValue(_)) | Some(Value::BytesValue(_)) => any.encoded_len(),
            _ => any.encoded_len().max(SCALAR_TEXT_MAX),
        };
        self.value_bytes > 0 && size > self.value_bytes
    }

    fn attributes_suspect(&self, attributes: &[KeyValue]) -> bool {
        attributes.iter().any(|kv| self.value_suspect(kv.value.as_ref()))
    }

    /// Would `_invalid_reason` drop this span, or `_repair` change it?
    fn span_suspect(&self, span: &Span) -> bool {
        let ids_bad = bad_id(&span.trace_id, 16) || bad_id(&span.span_id, 8);
        let parent = &span.parent_span_id;
        let (start, end) = (span.start_time_unix_nano, span.end_time_unix_nano);
        let times_ok = self.min_time <= start && start <= end && end <= self.max_time;
        ids_bad
            || (!parent.is_empty() && parent.len() != 8)
            || !times_ok
            || (self.name_bytes > 0 && span.name.len() > self.name_bytes)
            || self.attributes_suspect(&span.attributes)
            || span.events.iter().any(|e| self.attributes_suspect(&e.attributes))
            || span.links.iter().any(|l| self.attributes_suspect(&l.attributes))
    }
}

/// Levels of arrays/maps in a value: 0 for a scalar, 1 for an array of scalars (as `_too_deep`).
fn nesting(any: &AnyValue) -> usize {
    let children = match &any.value {
        Some(Value::ArrayValue(array)) => array.values.iter().map(nesting).max(),
        Some(Value::KvlistValue(list)) => list.values.iter().map(|kv| kv.value.as_ref().map_or(0, nesting)).max(),
        _ => return 0,
    };
    1 + children.unwrap_or(0)
}

/// An upper bound of the JSON text of an array/map from its encoded size (an encoding may also
/// carry unknown fields prost drops, which only make Python's size larger, never the text): every
/// element takes at least 2 encoded bytes for at most 24 characters, and a string byte becomes at
/// most 6 (`\u00XX`).
fn json_text_bound(encoded: usize) -> usize {
    encoded.saturating_mul(12).saturating_add(SCALAR_TEXT_MAX)
}

fn bad_id(id: &[u8], size: usize) -> bool {
    id.len() != size || id.iter().all(|&b| b == 0)
}

fn has_prefixed_key(span: &Span, prefixes: &[String]) -> bool {
    span.attributes.iter().any(|kv| prefixes.iter().any(|p| kv.key.starts_with(p.as_str())))
}

/// (spans needing validation, GenAI candidate spans, resource/scope attributes needing a check).
fn scan_request(request: &ExportTraceServiceRequest, limits: &Limits, prefixes: &[String]) -> (Vec<usize>, Vec<usize>, bool, usize) {
    let (mut attention, mut genai, mut resources) = (Vec::new(), Vec::new(), false);
    let mut index = 0;
    for rs in &request.resource_spans {
        if let Some(r) = &rs.resource {
            resources = resources || limits.attributes_suspect(&r.attributes);
        }
        for ss in &rs.scope_spans {
            if let Some(scope) = &ss.scope {
                resources = resources || limits.attributes_suspect(&scope.attributes);
            }
            for span in &ss.spans {
                if limits.span_suspect(span) {
                    attention.push(index);
                }
                if has_prefixed_key(span, prefixes) {
                    genai.push(index);
                }
                index += 1;
            }
        }
    }
    (attention, genai, resources, index)
}

/// Clamps a Python int time into u64 (a limit past either end of u64 is exact when clamped).
fn clamp_time(ns: i128) -> u64 {
    ns.max(0).min(u64::MAX as i128) as u64
}

/// Conservative pre-filter for validation and the GenAI normaliser, without the GIL.
///
/// Returns `(attention, genai, resources_need_check, span_count)`: global span indices (message
/// order) that validation may drop or repair (a superset), indices of spans with an attribute key
/// starting with one of `prefixes` (exact), whether any resource/scope attribute may need cutting,
/// and the number of spans (so the receiver never parses the payload only to count them).
#[pyfunction]
#[allow(clippy::too_many_arguments)] // the validation settings, as Python passes them
fn scan(
    py: Python<'_>,
    data: &[u8],
    max_value_bytes: usize,
    max_depth: usize,
    max_name_bytes: usize,
    min_time_ns: i128,
    max_time_ns: i128,
    prefixes: Vec<String>,
) -> PyResult<(Vec<usize>, Vec<usize>, bool, usize)> {
    let limits = Limits {
        value_bytes: max_value_bytes,
        depth: max_depth,
        name_bytes: max_name_bytes,
        min_time: clamp_time(min_time_ns),
        max_time: clamp_time(max_time_ns),
    };
    py.detach(|| {
        ExportTraceServiceRequest::decode(data).map(|request| scan_request(&request, &limits, &prefixes))
    })
    .map_err(|e| PyValueError::new_err(e.to_string()))
}

#[pymodule]
fn genaitrace_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(arrow_columns, m)?)?;
    m.add_function(wrap_pyfunction!(scan, m)?)?;
    m.add_function(wrap_pyfunction!(wire::genai_rows, m)?)?;
    m.add_function(wrap_pyfunction!(wire::apply_patches, m)?)?;
    Ok(())
}
