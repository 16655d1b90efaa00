-- The intake's trace context (a W3C `traceparent`) of each event, when traces are
-- exported: the workers' attempts continue that trace. NULL when they were not.
ALTER TABLE events ADD COLUMN trace_context TEXT;
