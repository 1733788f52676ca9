-- otel_traces skipping indexes from ClickHouse 26.2: text indexes (tokenizer 'array': every
-- element is one token).
    INDEX idx_trace_id TraceId TYPE text(tokenizer = 'array'),
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE text(tokenizer = 'array'),
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE text(tokenizer = 'array'),
    INDEX idx_res_attr_item {resource_items} TYPE text(tokenizer = 'array'),
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE text(tokenizer = 'array'),
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE text(tokenizer = 'array'),
    INDEX idx_span_attr_item {span_items} TYPE text(tokenizer = 'array'),
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1,
    INDEX idx_lower_span_name lower(SpanName) TYPE text(tokenizer = 'splitByNonAlpha')
