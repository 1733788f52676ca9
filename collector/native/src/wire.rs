//! Wire-level walks of a serialized ExportTraceServiceRequest, for the processors' GenAI rows.
//!
//! * `genai_rows`: the spans with a GenAI-looking attribute key, each as a Python tuple (index,
//!   name, ids, status, times, attribute dict, resource attribute dict), decoded without touching
//!   the other spans.
//! * `apply_patches`: the payload with some spans' attributes removed, replaced or appended. Only
//!   the patched spans' attribute fields are rewritten; every other byte, unknown fields included,
//!   is copied as it came, and the enclosing messages' lengths are recomputed.
//!
//! Fields are matched by number and wire type as upb does: a known field number with another wire
//! type is an unknown field, copied or skipped, never an error.

use std::collections::HashMap;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use pyo3::IntoPyObjectExt;


const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

// Field numbers (opentelemetry-proto trace.proto / common.proto).
const REQUEST_RESOURCE_SPANS: u32 = 1;
const RESOURCE_SPANS_SCOPE_SPANS: u32 = 2;
const SCOPE_SPANS_SPANS: u32 = 2;
const SPAN_ATTRIBUTES: u32 = 9;
const KEY_VALUE_KEY: u32 = 1;
const KEY_VALUE_VALUE: u32 = 2;
const SPAN_EVENTS: u32 = 11;
const SPAN_STATUS: u32 = 15;
const STATUS_MESSAGE: u32 = 2;
const STATUS_CODE: u32 = 3;
const STATUS_CODE_ERROR: i32 = 2;
const EVENT_NAME: u32 = 2;
const EVENT_ATTRIBUTES: u32 = 3;

fn malformed(what: &str) -> PyErr {
    PyValueError::new_err(format!("malformed OTLP payload: {}", what))
}

/// An attribute value set more than once on the wire, which protobuf merges: this reader leaves
/// that to the caller, which reads the canonical bytes instead (`collector.pdata.Traces.read_natively`).
fn merged_value() -> PyErr {
    malformed("an attribute value set more than once (read the canonical bytes)")
}

// --- reading ------------------------------------------------------------------------------------

#[inline]
fn read_varint(data: &[u8], pos: &mut usize) -> PyResult<u64> {
    let mut value: u64 = 0;
    let mut shift = 0;
    loop {
        let byte = *data.get(*pos).ok_or_else(|| malformed("truncated varint"))?;
        *pos += 1;
        if shift >= 64 {
            return Err(malformed("varint over 10 bytes"));
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(value);
        }
        shift += 7;
    }
}

/// One field of a message: its number, wire type, whole encoding (tag included) and content (for
/// a length-delimited field, what the length covers).
struct Field<'a> {
    number: u32,
    wire: u8,
    raw: &'a [u8],
    body: &'a [u8],
}

impl<'a> Field<'a> {
    fn is(&self, number: u32) -> bool {
        self.number == number && self.wire == LEN
    }
}

/// The fields of one message, in wire order.
struct Fields<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    fn new(data: &'a [u8]) -> Self {
        Fields { data, pos: 0 }
    }

    #[inline]
    fn read(&mut self) -> PyResult<Field<'a>> {
        let start = self.pos;
        let tag = read_varint(self.data, &mut self.pos)?;
        let (number, wire) = ((tag >> 3) as u32, (tag & 7) as u8);
        if number == 0 {
            return Err(malformed("field number 0"));
        }
        let body_start = match wire {
            VARINT => {
                let at = self.pos;
                read_varint(self.data, &mut self.pos)?;
                at
            }
            FIXED64 => {
                self.pos += 8;
                self.pos - 8
            }
            FIXED32 => {
                self.pos += 4;
                self.pos - 4
            }
            LEN => {
                let length = read_varint(self.data, &mut self.pos)?;
                let at = self.pos;
                self.pos = usize::try_from(length)
                    .ok()
                    .and_then(|n| at.checked_add(n))
                    .ok_or_else(|| malformed("length past the end"))?;
                at
            }
            _ => return Err(malformed("group or unknown wire type")),
        };
        if self.pos > self.data.len() {
            return Err(malformed("field past the end"));
        }
        Ok(Field { number, wire, raw: &self.data[start..self.pos], body: &self.data[body_start..self.pos] })
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = PyResult<Field<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.data.len() {
            return None;
        }
        Some(self.read())
    }
}

/// A KeyValue's key, as bytes ("" when absent; the last occurrence wins, as protobuf merges).
fn key_of(key_value: &[u8]) -> PyResult<&[u8]> {
    let mut key: &[u8] = b"";
    for field in Fields::new(key_value) {
        let field = field?;
        if field.is(KEY_VALUE_KEY) {
            key = field.body;
        }
    }
    Ok(key)
}

fn has_prefixed_key(span: &[u8], prefixes: &[String]) -> PyResult<bool> {
    for field in Fields::new(span) {
        let field = field?;
        if field.is(SPAN_ATTRIBUTES) {
            let key = key_of(field.body)?;
            if prefixes.iter().any(|p| key.starts_with(p.as_bytes())) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Calls `visit(resource, index, span)` for every span, in message order (the order of
/// `Traces.spans()`); `resource` is the index of its ResourceSpans and that message.
fn for_each_span<'a>(
    data: &'a [u8],
    mut visit: impl FnMut((usize, &'a [u8]), usize, &'a [u8]) -> PyResult<()>,
) -> PyResult<()> {
    let mut index = 0;
    let resources = Fields::new(data).filter(|f| f.as_ref().map_or(true, |f| f.is(REQUEST_RESOURCE_SPANS)));
    for (resource, resource_spans) in resources.enumerate() {
        let resource_spans = resource_spans?;
        for scope_spans in Fields::new(resource_spans.body) {
            let scope_spans = scope_spans?;
            if !scope_spans.is(RESOURCE_SPANS_SCOPE_SPANS) {
                continue;
            }
            for span in Fields::new(scope_spans.body) {
                let span = span?;
                if span.is(SCOPE_SPANS_SPANS) {
                    visit((resource, resource_spans.body), index, span.body)?;
                    index += 1;
                }
            }
        }
    }
    Ok(())
}

/// FNV-1a: the string cache's keys are short and not attacker-chosen collisions that matter (a
/// collision costs a comparison, not correctness), and SipHash was a tenth of `genai_rows`.
#[derive(Default)]
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for &byte in bytes {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }
}

/// Python strings for what repeats from span to span (attribute keys, short values such as model
/// and provider names), made once per call: fewer objects, and their hashes are computed once.
struct Strings<'a> {
    made: HashMap<&'a [u8], Py<PyAny>, std::hash::BuildHasherDefault<Fnv>>,
}

impl<'a> Strings<'a> {
    const SHORT: usize = 64;

    fn get(&mut self, py: Python<'_>, raw: &'a [u8]) -> PyResult<Py<PyAny>> {
        if raw.len() > Self::SHORT {
            return utf8(raw)?.into_py_any(py);
        }
        if let Some(text) = self.made.get(raw) {
            return Ok(text.clone_ref(py));
        }
        let text = utf8(raw)?.into_py_any(py)?;
        self.made.insert(raw, text.clone_ref(py));
        Ok(text)
    }
}

fn utf8(raw: &[u8]) -> PyResult<&str> {
    std::str::from_utf8(raw).map_err(|_| malformed("invalid UTF-8 in a string field"))
}

/// An AnyValue as `collector.pdata.any_value_to_python` returns it, read off the wire; None when
/// it sets its value more than once (protobuf would merge them: see `merged_value`).
fn any_to_python<'a>(
    py: Python<'_>,
    any: &'a [u8],
    strings: &mut Strings<'a>,
    encode_bytes: &Bound<'_, PyAny>,
) -> PyResult<Option<Py<PyAny>>> {
    let mut value = None;
    for field in Fields::new(any) {
        let field = field?;
        let read = match (field.number, field.wire) {
            (1, LEN) => strings.get(py, field.body)?,
            (2, VARINT) => (read_varint(field.body, &mut 0)? != 0).into_py_any(py)?,
            (3, VARINT) => (read_varint(field.body, &mut 0)? as i64).into_py_any(py)?,
            (4, FIXED64) => f64::from_le_bytes(field.body.try_into().expect("8 bytes")).into_py_any(py)?,
            (5, LEN) => {
                let list = PyList::empty(py);
                for item in Fields::new(field.body) {
                    let item = item?;
                    if item.is(1) {
                        match any_to_python(py, item.body, strings, encode_bytes)? {
                            Some(v) => list.append(v)?,
                            None => return Ok(None),
                        }
                    }
                }
                list.into_any().unbind()
            }
            (6, LEN) => {
                let dict = PyDict::new(py);
                if !read_key_values(py, field.body, &dict, strings, encode_bytes)? {
                    return Ok(None);
                }
                dict.into_any().unbind()
            }
            (7, LEN) => encode_bytes.call1((PyBytes::new(py, field.body),))?.unbind(),
            _ => continue, // an unknown field (or a known one with another wire type, as upb reads it)
        };
        if value.is_some() {
            return Ok(None);
        }
        value = Some(read);
    }
    Ok(Some(value.unwrap_or_else(|| py.None())))
}

/// (key, value) of a KeyValue; None when a field repeats (see `any_to_python`).
fn key_value_to_python<'a>(
    py: Python<'_>,
    kv: &'a [u8],
    strings: &mut Strings<'a>,
    encode_bytes: &Bound<'_, PyAny>,
) -> PyResult<Option<(Py<PyAny>, Py<PyAny>)>> {
    let Some((key, value)) = key_and_value(kv)? else {
        return Ok(None);
    };
    let key = strings.get(py, key)?;
    match value {
        None => Ok(Some((key, py.None()))),
        Some(any) => Ok(any_to_python(py, any, strings, encode_bytes)?.map(|v| (key, v))),
    }
}

/// A KeyValue's key ("" when absent) and value's encoding; None when either field comes twice
/// (protobuf would merge them: see `any_to_python`).
fn key_and_value(kv: &[u8]) -> PyResult<Option<(&[u8], Option<&[u8]>)>> {
    let (mut key, mut value): (Option<&[u8]>, Option<&[u8]>) = (None, None);
    for field in Fields::new(kv) {
        let field = field?;
        if field.is(KEY_VALUE_KEY) {
            if key.replace(field.body).is_some() {
                return Ok(None);
            }
        } else if field.is(KEY_VALUE_VALUE) && value.replace(field.body).is_some() {
            return Ok(None);
        }
    }
    Ok(Some((key.unwrap_or(b""), value)))
}

/// A row's fields, read off the wire.
struct Row<'a> {
    trace_id: &'a [u8],
    span_id: &'a [u8],
    parent_span_id: &'a [u8],
    name: &'a [u8],
    start: u64,
    end: u64,
    status: i32,
    status_message: &'a [u8],
    events: Vec<&'a [u8]>,
}

fn read_row<'a>(
    py: Python<'_>,
    span: &'a [u8],
    attributes: &Bound<'_, PyDict>,
    strings: &mut Strings<'a>,
    encode_bytes: &Bound<'_, PyAny>,
) -> PyResult<Option<Row<'a>>> {
    let mut row = Row {
        trace_id: b"",
        span_id: b"",
        parent_span_id: b"",
        name: b"",
        start: 0,
        end: 0,
        status: 0,
        status_message: b"",
        events: Vec::new(),
    };
    for field in Fields::new(span) {
        let field = field?;
        match (field.number, field.wire) {
            (1, LEN) => row.trace_id = field.body,
            (2, LEN) => row.span_id = field.body,
            (4, LEN) => row.parent_span_id = field.body,
            (5, LEN) => row.name = field.body,
            (7, FIXED64) => row.start = u64::from_le_bytes(field.body.try_into().expect("8 bytes")),
            (8, FIXED64) => row.end = u64::from_le_bytes(field.body.try_into().expect("8 bytes")),
            (SPAN_ATTRIBUTES, LEN) => match key_value_to_python(py, field.body, strings, encode_bytes)? {
                Some((key, value)) => attributes.set_item(key, value)?,
                None => return Ok(None),
            },
            (SPAN_EVENTS, LEN) => row.events.push(field.body),
            (SPAN_STATUS, LEN) => {
                for status in Fields::new(field.body) {
                    let status = status?;
                    match (status.number, status.wire) {
                        (STATUS_CODE, VARINT) => row.status = read_varint(status.body, &mut 0)? as i32,
                        (STATUS_MESSAGE, LEN) => row.status_message = status.body,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(Some(row))
}

/// The `exception.type` string values of a failed span's `exception` events (`exception`: the
/// semantic conventions' event name and attribute key, from Python), in the order
/// `genai_normalizer.error_type` looks at them: the last event first, each event's attributes in
/// order (a value that is not a string reads as "", as upb's `string_value`). Errors as
/// `any_to_python` for a key or value set twice (the canonical bytes are read instead).
fn exception_types<'py>(py: Python<'py>, events: &[&[u8]], exception: &(String, String)) -> PyResult<Bound<'py, PyList>> {
    let types = PyList::empty(py);
    for event in events.iter().rev() {
        let mut name: &[u8] = b"";
        let mut found: Vec<&[u8]> = Vec::new();
        for field in Fields::new(event) {
            let field = field?;
            match (field.number, field.wire) {
                (EVENT_NAME, LEN) => name = field.body,
                (EVENT_ATTRIBUTES, LEN) => {
                    if let Some(value) = exception_type_of(field.body, exception.1.as_bytes())? {
                        found.push(value);
                    }
                }
                _ => {}
            }
        }
        if name == exception.0.as_bytes() {
            for value in found {
                types.append(utf8(value)?)?;
            }
        }
    }
    Ok(types)
}

/// A KeyValue's string value if its key is `type_key` ("" for another kind of value).
fn exception_type_of<'a>(kv: &'a [u8], type_key: &[u8]) -> PyResult<Option<&'a [u8]>> {
    let Some((key, value)) = key_and_value(kv)? else {
        return Err(merged_value());
    };
    if key != type_key {
        return Ok(None);
    }
    let mut text: Option<&[u8]> = None;
    let mut set = 0;
    for field in Fields::new(value.unwrap_or(b"")) {
        let field = field?;
        if matches!((field.number, field.wire), (1, LEN) | (2, VARINT) | (3, VARINT) | (4, FIXED64) | (5, LEN) | (6, LEN) | (7, LEN)) {
            set += 1;
            text = if field.is(1) { Some(field.body) } else { None };
        }
    }
    if set > 1 {
        return Err(merged_value());
    }
    Ok(Some(text.unwrap_or(b"")))
}

/// Adds the KeyValues in field 1 of `message` (a KeyValueList, or a Resource's attributes) to
/// `dict`, a later duplicate key replacing the value as in Python; false when a value is left to
/// the caller (see `any_to_python`).
fn read_key_values<'a>(
    py: Python<'_>,
    message: &'a [u8],
    dict: &Bound<'_, PyDict>,
    strings: &mut Strings<'a>,
    encode_bytes: &Bound<'_, PyAny>,
) -> PyResult<bool> {
    for kv in Fields::new(message) {
        let kv = kv?;
        if kv.is(1) {
            match key_value_to_python(py, kv.body, strings, encode_bytes)? {
                Some((key, value)) => dict.set_item(key, value)?,
                None => return Ok(false),
            }
        }
    }
    Ok(true)
}

/// A ResourceSpans' resource attributes as a dict (a resource set twice merges: its attributes
/// append, and the last of a duplicate key wins).
fn resource_attributes<'a>(
    py: Python<'_>,
    resource_spans: &'a [u8],
    strings: &mut Strings<'a>,
    encode_bytes: &Bound<'_, PyAny>,
) -> PyResult<Option<Py<PyAny>>> {
    let attributes = PyDict::new(py);
    for resource in Fields::new(resource_spans) {
        let resource = resource?;
        if resource.is(1) && !read_key_values(py, resource.body, &attributes, strings, encode_bytes)? {
            return Ok(None);
        }
    }
    Ok(Some(attributes.into_any().unbind()))
}

/// The spans with an attribute key starting with one of `prefixes` (or exactly those at
/// `indices`, ascending, when the receiver's scan already named them), each as
/// `(index, name, trace_id, span_id, parent_span_id, status_code, start_time_unix_nano,
/// end_time_unix_nano, attributes, resource_attributes, status_message, exception_types)` (the
/// last two for a failed span only, see `exception_types`; "" and None otherwise) with attributes as
/// `collector.pdata.any_value_to_python` gives them, the last duplicate key winning; rows of one
/// resource share its dict (`collector.pdata.Traces.genai_rows`). ValueError for what this reader
/// leaves to the canonical bytes (a value set twice) or cannot read.
#[pyfunction]
pub fn genai_rows<'py>(
    py: Python<'py>,
    data: &[u8],
    indices: Option<Vec<usize>>,
    prefixes: Vec<String>,
    encode_bytes: &Bound<'py, PyAny>,
    exception: (String, String),
) -> PyResult<Bound<'py, PyList>> {
    let rows = PyList::empty(py);
    let mut wanted = indices.map(|list| list.into_iter().peekable());
    let mut strings = Strings { made: HashMap::default() };
    let mut resource: Option<(usize, Py<PyAny>)> = None;
    for_each_span(data, |(resource_index, resource_spans), index, body| {
        let pick = match wanted.as_mut() {
            Some(list) => list.next_if_eq(&index).is_some(),
            None => has_prefixed_key(body, &prefixes)?,
        };
        if !pick {
            return Ok(());
        }
        let attributes = PyDict::new(py);
        let row = match read_row(py, body, &attributes, &mut strings, encode_bytes)? {
            Some(row) => row,
            None => return Err(merged_value()),
        };
        if resource.as_ref().map(|(i, _)| *i) != Some(resource_index) {
            let read = match resource_attributes(py, resource_spans, &mut strings, encode_bytes)? {
                Some(read) => read,
                None => return Err(merged_value()),
            };
            resource = Some((resource_index, read));
        }
        // What a failed span's error type is read from (genai_normalizer), only for failed spans.
        let failed = row.status == STATUS_CODE_ERROR;
        let failed_message = if failed { utf8(row.status_message)? } else { "" };
        let failed_types = if failed { exception_types(py, &row.events, &exception)?.into_any().unbind() } else { py.None() };
        let items: [Py<PyAny>; 12] = [
            index.into_py_any(py)?,
            utf8(row.name)?.into_py_any(py)?,
            PyBytes::new(py, row.trace_id).into_any().unbind(),
            PyBytes::new(py, row.span_id).into_any().unbind(),
            PyBytes::new(py, row.parent_span_id).into_any().unbind(),
            row.status.into_py_any(py)?,
            row.start.into_py_any(py)?,
            row.end.into_py_any(py)?,
            attributes.into_any().unbind(),
            resource.as_ref().expect("set above").1.clone_ref(py),
            failed_message.into_py_any(py)?,
            failed_types,
        ];
        rows.append(PyTuple::new(py, items)?)
    })?;
    Ok(rows)
}

// --- writing ------------------------------------------------------------------------------------

fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn write_tag(out: &mut Vec<u8>, number: u32, wire: u8) {
    write_varint(out, (u64::from(number) << 3) | u64::from(wire));
}

fn write_len_field(out: &mut Vec<u8>, number: u32, body: &[u8]) {
    write_tag(out, number, LEN);
    write_varint(out, body.len() as u64);
    out.extend_from_slice(body);
}

/// Appends a length-delimited field whose content `write` produces, without a buffer of its own:
/// the content goes after a one-byte length, moved right if the length takes more bytes.
fn write_nested(out: &mut Vec<u8>, number: u32, write: impl FnOnce(&mut Vec<u8>) -> PyResult<()>) -> PyResult<()> {
    write_tag(out, number, LEN);
    let at = out.len();
    out.push(0);
    write(out)?;
    let length = out.len() - at - 1;
    if length < 0x80 {
        out[at] = length as u8;
    } else {
        let mut prefix = Vec::with_capacity(5);
        write_varint(&mut prefix, length as u64);
        out.splice(at..at + 1, prefix);
    }
    Ok(())
}

/// An AnyValue's content for a Python value, as `collector.pdata.set_any_value` sets it: None is
/// an empty value, and anything not bool/int/float/list/tuple/dict is `str(value)`.
fn encode_any(value: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> PyResult<()> {
    if let Ok(text) = value.cast::<PyString>() {
        write_len_field(out, 1, text.to_str()?.as_bytes());
    } else if value.is_none() {
    } else if let Ok(flag) = value.cast::<PyBool>() {
        write_tag(out, 2, VARINT);
        write_varint(out, u64::from(flag.is_true()));
    } else if value.is_instance_of::<PyInt>() {
        let number: i64 = value
            .extract()
            .map_err(|_| PyValueError::new_err(format!("Value out of range: {}", value)))?;
        write_tag(out, 3, VARINT);
        write_varint(out, number as u64);
    } else if value.is_instance_of::<PyFloat>() {
        let number: f64 = value.extract()?;
        write_tag(out, 4, FIXED64);
        out.extend_from_slice(&number.to_le_bytes());
    } else if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        write_nested(out, 5, |array| {
            for item in value.try_iter()? {
                write_nested(array, 1, |one| encode_any(&item?, one))?;
            }
            Ok(())
        })?;
    } else if let Ok(map) = value.cast::<PyDict>() {
        write_nested(out, 6, |list| {
            for (key, item) in map.iter() {
                write_nested(list, 1, |one| encode_key_value(&key.str()?, &item, one))?;
            }
            Ok(())
        })?;
    } else {
        let text = value.str()?;
        write_len_field(out, 1, text.to_str()?.as_bytes());
    }
    Ok(())
}

/// A KeyValue's content; a None value leaves the value field out, as Python's `Clear()` does.
fn encode_key_value(key: &Bound<'_, PyString>, value: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> PyResult<()> {
    write_len_field(out, KEY_VALUE_KEY, key.to_str()?.as_bytes());
    if !value.is_none() {
        write_nested(out, KEY_VALUE_VALUE, |any| encode_any(value, any))?;
    }
    Ok(())
}

/// One span's change: keys to remove (every occurrence), then keys to set, each replacing the last
/// remaining occurrence of its key in place or, if there is none, appended in order.
struct Patch {
    index: usize,
    remove: Vec<Vec<u8>>,
    set: Vec<(Vec<u8>, std::ops::Range<usize>)>, // key, and its attributes field in `fields`
    fields: Vec<u8>,
}

impl Patch {
    fn read(item: &Bound<'_, PyAny>) -> PyResult<Self> {
        let (index, remove, set): (usize, Bound<'_, PyList>, Bound<'_, PyDict>) = item.extract()?;
        let mut patch = Patch { index, remove: Vec::with_capacity(remove.len()), set: Vec::with_capacity(set.len()), fields: Vec::new() };
        for key in remove.iter() {
            patch.remove.push(key.cast::<PyString>()?.to_str()?.as_bytes().to_vec());
        }
        for (key, value) in set.iter() {
            let key = key.cast::<PyString>()?;
            let start = patch.fields.len();
            write_nested(&mut patch.fields, SPAN_ATTRIBUTES, |kv| encode_key_value(key, &value, kv))?;
            patch.set.push((key.to_str()?.as_bytes().to_vec(), start..patch.fields.len()));
        }
        Ok(patch)
    }

    fn removes(&self, key: &[u8]) -> bool {
        self.remove.iter().any(|k| k == key)
    }

    fn sets(&self, key: &[u8]) -> Option<usize> {
        self.set.iter().position(|(k, _)| k == key)
    }

    fn field(&self, n: usize) -> &[u8] {
        &self.fields[self.set[n].1.clone()]
    }
}

/// Which span comes next, and the patches not yet applied.
struct Cursor<'p> {
    patches: &'p [Patch],
    next: usize,
    span: usize,
}

impl Cursor<'_> {
    fn done(&self) -> bool {
        self.next >= self.patches.len()
    }
}

/// What becomes of one field of a patched span.
#[derive(Clone, Copy)]
enum Action {
    Copy,
    Drop,
    Replace(usize), // with the patch's n-th field
}

fn rewrite_span(span: &[u8], patch: &Patch) -> PyResult<Vec<u8>> {
    let fields = Fields::new(span).collect::<PyResult<Vec<_>>>()?;
    let mut actions = vec![Action::Copy; fields.len()];
    let mut replaced = vec![false; patch.set.len()];
    let mut last_attribute = None;
    for (i, field) in fields.iter().enumerate().rev() {
        if !field.is(SPAN_ATTRIBUTES) {
            continue;
        }
        last_attribute = last_attribute.or(Some(i));
        let key = key_of(field.body)?;
        if patch.removes(key) {
            actions[i] = Action::Drop;
        } else if let Some(n) = patch.sets(key) {
            if !replaced[n] {
                replaced[n] = true; // the last occurrence, as we walk backwards
                actions[i] = Action::Replace(n);
            }
        }
    }
    let mut out = Vec::with_capacity(span.len() + patch.fields.len());
    let append_new = |out: &mut Vec<u8>| {
        for n in (0..patch.set.len()).filter(|&n| !replaced[n]) {
            out.extend_from_slice(patch.field(n));
        }
    };
    for (i, field) in fields.iter().enumerate() {
        match actions[i] {
            Action::Copy => out.extend_from_slice(field.raw),
            Action::Drop => {}
            Action::Replace(n) => out.extend_from_slice(patch.field(n)),
        }
        if last_attribute == Some(i) {
            append_new(&mut out);
        }
    }
    if last_attribute.is_none() {
        append_new(&mut out);
    }
    Ok(out)
}

/// Rewrites the `number` fields of a message with `rewrite`, copying every other field.
fn rewrite_children(
    message: &[u8],
    number: u32,
    cursor: &mut Cursor<'_>,
    rewrite: fn(&[u8], &mut Cursor<'_>) -> PyResult<Vec<u8>>,
) -> PyResult<Vec<u8>> {
    let mut out = Vec::with_capacity(message.len() + 256);
    for field in Fields::new(message) {
        let field = field?;
        if field.is(number) && !cursor.done() {
            let body = rewrite(field.body, cursor)?;
            write_len_field(&mut out, number, &body);
        } else {
            out.extend_from_slice(field.raw);
        }
    }
    Ok(out)
}

fn rewrite_scope_spans(scope_spans: &[u8], cursor: &mut Cursor<'_>) -> PyResult<Vec<u8>> {
    let mut out = Vec::with_capacity(scope_spans.len() + 256);
    for field in Fields::new(scope_spans) {
        let field = field?;
        if field.is(SCOPE_SPANS_SPANS) {
            let index = cursor.span;
            cursor.span += 1;
            if !cursor.done() && cursor.patches[cursor.next].index == index {
                let span = rewrite_span(field.body, &cursor.patches[cursor.next])?;
                cursor.next += 1;
                write_len_field(&mut out, SCOPE_SPANS_SPANS, &span);
                continue;
            }
        }
        out.extend_from_slice(field.raw);
    }
    Ok(out)
}

fn rewrite_resource_spans(resource_spans: &[u8], cursor: &mut Cursor<'_>) -> PyResult<Vec<u8>> {
    rewrite_children(resource_spans, RESOURCE_SPANS_SCOPE_SPANS, cursor, rewrite_scope_spans)
}

/// The payload with `patches` applied: a list of `(span index, [keys to remove], {key: value to
/// set})`, span indices ascending and distinct (`collector.pdata.Traces.patch`).
#[pyfunction]
pub fn apply_patches<'py>(py: Python<'py>, data: &[u8], patches: &Bound<'py, PyList>) -> PyResult<Bound<'py, PyBytes>> {
    let patches = patches.iter().map(|item| Patch::read(&item)).collect::<PyResult<Vec<_>>>()?;
    if patches.windows(2).any(|pair| pair[0].index >= pair[1].index) {
        return Err(PyValueError::new_err("patches must be in ascending span order, one per span"));
    }
    // The rewrite touches no Python object: other threads (the receiver's, the exporter's) run
    // Python meanwhile.
    let out = py.detach(|| {
        let mut cursor = Cursor { patches: &patches, next: 0, span: 0 };
        let out = rewrite_children(data, REQUEST_RESOURCE_SPANS, &mut cursor, rewrite_resource_spans)?;
        if !cursor.done() {
            return Err(PyValueError::new_err(format!(
                "patch for span {}: the payload has {} spans",
                patches[cursor.next].index, cursor.span
            )));
        }
        Ok(out)
    })?;
    Ok(PyBytes::new(py, &out))
}
