"""Every metric sfstripe records. Names carry the `sfstripe_` prefix and their unit."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

from metrics.registry import REGISTRY

BUILD_INFO = Info("sfstripe_build", "Version of the running sfstripe.", registry=REGISTRY)

DATABASE_UP = Gauge(
    "sfstripe_database_up",
    "1 while PostgreSQL accepts commits, 0 while intake is paused for it.",
    registry=REGISTRY,
)
LOG_HEAD = Gauge(
    "sfstripe_log_head_offset", "Offset of the newest committed log event.", registry=REGISTRY
)
EVENTS_APPENDED = Counter(
    "sfstripe_events_appended_total",
    "Events committed to the log.",
    ["source"],
    registry=REGISTRY,
)
EVENTS_DUPLICATE = Counter(
    "sfstripe_events_duplicate_total",
    "Events handed to the log that were already stored (no new row).",
    ["source"],
    registry=REGISTRY,
)
EVENTS_REJECTED = Counter(
    "sfstripe_events_rejected_total",
    "Events the log could not store as rows, kept aside in rejected_events with the reason.",
    ["source"],
    registry=REGISTRY,
)
APPEND_SECONDS = Histogram(
    "sfstripe_append_batch_seconds",
    "Time to commit one batch to the log.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
APPEND_FAILURES = Counter(
    "sfstripe_append_failures_total",
    "Batches the log refused, by reason (database_unavailable retries; rejected is permanent).",
    ["reason"],
    registry=REGISTRY,
)
INTAKE_QUEUE_FILL = Gauge(
    "sfstripe_intake_queue_fill_ratio",
    "How full the bounded queue in front of the log writer is (0..1).",
    registry=REGISTRY,
)
COMPONENT_RESTARTS = Counter(
    "sfstripe_component_restarts_total",
    "Supervised components that crashed and were restarted.",
    ["component"],
    registry=REGISTRY,
)
SOURCE_CONNECTED = Gauge(
    "sfstripe_source_connected",
    "1 while a source's connection is up (Salesforce CDC, per channel), else 0.",
    ["source", "channel"],
    registry=REGISTRY,
)
SOURCE_RECONNECTS = Counter(
    "sfstripe_source_reconnects_total",
    "Times a source rebuilt its connection, by reason.",
    ["source", "reason"],
    registry=REGISTRY,
)
SOURCE_SERVER_ERRORS = Counter(
    "sfstripe_source_server_errors_total",
    "Error answers from a source's server (Bayeux /meta/* for Salesforce), by kind.",
    ["source", "kind"],
    registry=REGISTRY,
)
SOURCE_RECEIVED = Counter(
    "sfstripe_source_messages_received_total",
    "Messages a streaming source pulled from its client (bounded by backpressure).",
    ["source"],
    registry=REGISTRY,
)
SALESFORCE_REPLAY_ID = Gauge(
    "sfstripe_salesforce_replay_id",
    "Replay id last committed per CDC channel.",
    ["channel"],
    registry=REGISTRY,
)
READY = Gauge(
    "sfstripe_ready", "1 while /readyz answers ready (can accept and commit).", registry=REGISTRY
)
WEBHOOK_REJECTIONS = Counter(
    "sfstripe_webhook_rejections_total",
    "Webhook requests refused at the door (nothing stored), by reason.",
    ["reason"],
    registry=REGISTRY,
)
WEBHOOK_DEFERRED = Counter(
    "sfstripe_webhook_deferred_total",
    "Webhook requests answered 503 so that Stripe redelivers later, by reason.",
    ["reason"],
    registry=REGISTRY,
)
WEBHOOK_ACCEPTED = Counter(
    "sfstripe_webhook_accepted_total",
    "Webhook requests acknowledged after commit, by whether the event was new.",
    ["outcome"],
    registry=REGISTRY,
)
STRIPE_POLL_PASSES = Counter(
    "sfstripe_stripe_poll_passes_total",
    "Passes of the /v1/events poller, by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
STRIPE_CURSOR_AGE = Gauge(
    "sfstripe_stripe_cursor_age_seconds",
    "Age of the newest Stripe event the poller has committed.",
    registry=REGISTRY,
)
API_RATE_LIMITED = Counter(
    "sfstripe_api_rate_limited_total",
    "Responses that asked sfstripe to slow down (429, Stripe-Should-Retry), by API.",
    ["api"],
    registry=REGISTRY,
)
GAP_MARKERS = Counter(
    "sfstripe_gap_markers_total",
    "Gap markers written: events a source could no longer deliver, by source.",
    ["source"],
    registry=REGISTRY,
)
