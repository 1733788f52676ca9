"""The collector's native module (Rust: `collector/native/src`, pyo3 + prost), the one
implementation of the wire-level stages: the Python side only wraps what they return.

Built by the package's own build (maturin, `pip install .` or `./run.sh`'s editable install) into
`collector/native/genaitrace_native.*.so`, like any extension; it is used only through here.
This package imports nothing of the project: what the Rust side needs from Python (the JSON
rendering of nested values, base64 of bytes values, the column order) is passed in by the caller.

* `scan(data, max_value_bytes, max_depth, max_name_bytes, min_time_ns, max_time_ns, prefixes)`:
  `(attention, genai, resources_need_check)`, the spans validation and the GenAI processors must
  visit (`collector.receivers.validation`).
* `genai_rows(data, indices, prefixes, encode_bytes, exception)` and `apply_patches(data, patches)`: the GenAI
  processors' rows and their patches, on the serialized payload (`collector.pdata.Traces`).
* `arrow_columns(data, render, column_names)`: the Arrow buffers of the named `otel_traces`
  columns, in that order (`collector.storage.columns.payloads_to_arrow`).

Each raises ValueError on what prost (or the wire reader) cannot read; `Traces.read_natively`
then makes the bytes canonical once (`collector.pdata.canonical_protobuf`) and reads again.
"""

from __future__ import annotations



class NativeModuleMissing(ImportError):
    """The install step that builds the native module did not run (the CLI says so, no traceback)."""


try:
    from collector.native.genaitrace_native import apply_patches, arrow_columns, genai_rows, scan
except ImportError as exc:
    raise NativeModuleMissing(
        "the collector's native module (collector.native.genaitrace_native) is not built: run ./run.sh, "
        "or `pip install .` (needs Rust >= 1.85 and cargo, e.g. rustup's)",
        name="collector.native.genaitrace_native") from exc

__all__ = ["NativeModuleMissing", "apply_patches", "arrow_columns", "genai_rows", "scan"]
