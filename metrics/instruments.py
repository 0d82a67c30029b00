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
    "Events committed to the log (ingested), by source and event type.",
    ["source", "type"],
    registry=REGISTRY,
)
EVENTS_DUPLICATE = Counter(
    "sfstripe_events_duplicate_total",
    "Events handed to the log that were already stored (no new row).",
    ["source"],
    registry=REGISTRY,
)
INGEST_LAG = Histogram(
    "sfstripe_ingest_lag_seconds",
    "From an event's source time (commit in Salesforce, created in Stripe) to its commit here.",
    ["source"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 86400),
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

# The handler runtime (handlers/): dispatch, retries, dead letters, shadow mode, leadership.
_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 300.0)
LEADER = Gauge(
    "sfstripe_leader",
    "1 while this process is the leader (runs the sources' pulling and the dispatcher), 0 on"
    " standby.",
    registry=REGISTRY,
)
HANDLER_BACKLOG = Gauge(
    "sfstripe_handler_backlog_events",
    "Events not yet applied or passed by a handler: log head minus the handler's low-water offset.",
    ["handler"],
    registry=REGISTRY,
)
HANDLER_LOW_WATER = Gauge(
    "sfstripe_handler_low_water_offset",
    "Offset at or below which a handler has applied, passed or parked every event.",
    ["handler"],
    registry=REGISTRY,
)
HANDLER_SECONDS = Histogram(
    "sfstripe_handler_duration_seconds",
    "Duration of one handler call (one event, or one batch for batch handlers).",
    ["handler"],
    buckets=_LAG_BUCKETS,
    registry=REGISTRY,
)
HANDLER_EVENTS = Counter(
    "sfstripe_handler_events_total",
    "Events through handler calls, by outcome (ok, retryable_error, permanent_error).",
    ["handler", "outcome"],
    registry=REGISTRY,
)
HANDLER_START_DELAY = Histogram(
    "sfstripe_handler_start_delay_seconds",
    "Time from an event's append (its transaction's start) to the start of the handler call"
    " that applies it.",
    ["handler"],
    buckets=_LAG_BUCKETS,
    registry=REGISTRY,
)
HANDLER_RETRIES = Counter(
    "sfstripe_handler_retries_total",
    "Retries scheduled after a retryable handler failure.",
    ["handler"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "sfstripe_dead_letters_total",
    "Events that became dead letters (their customer's lane is parked for that handler).",
    ["handler"],
    registry=REGISTRY,
)
PARKED_CUSTOMERS = Gauge(
    "sfstripe_parked_customers",
    "Customers whose lane is parked on a dead letter, per handler.",
    ["handler"],
    registry=REGISTRY,
)
DISPATCH_BUFFER_FILL = Gauge(
    "sfstripe_dispatch_buffer_fill_ratio",
    "Events the dispatcher holds in memory over its bound (0..1); at 1 it stops reading the log.",
    registry=REGISTRY,
)
DISPATCH_PAUSED = Gauge(
    "sfstripe_dispatch_paused",
    "1 while the dispatcher is paused because it lost the database (or its leader session):"
    " it takes no new work until it is back, then 0.",
    registry=REGISTRY,
)
WRITES_SKIPPED = Counter(
    "sfstripe_writes_skipped_total",
    "Calls to an external API logged instead of sent in shadow mode or a dry run, by API and"
    " method.",
    ["api", "method"],
    registry=REGISTRY,
)
REPLAYS = Counter(
    "sfstripe_replays_total",
    "Replays this process ran, by kind (log, position) and outcome (done, failed, cancelled).",
    ["kind", "outcome"],
    registry=REGISTRY,
)
ECHOES_SUPPRESSED = Counter(
    "sfstripe_echoes_suppressed_total",
    "Fields of incoming changes recognised as sfstripe's own writes coming back, not re-applied;"
    " by the source of the change and the object.",
    ["source", "object"],
    registry=REGISTRY,
)
SYNC_FIELDS_WRITTEN = Counter(
    "sfstripe_sync_fields_written_total",
    "Fields the customer sync wrote, by the side written to and the object.",
    ["side", "object"],
    registry=REGISTRY,
)
SYNC_CUSTOMERS = Counter(
    "sfstripe_sync_customers_total",
    "Stripe customers the sync connected to Accounts: created, or found by metadata.sf_account_id.",
    ["outcome"],
    registry=REGISTRY,
)
STRIPE_STALE_EVENTS = Counter(
    "sfstripe_stripe_stale_events_total",
    "Stripe events not applied because a newer or final state was already applied, or re-fetched"
    " because two events tied; by object kind and decision.",
    ["kind", "decision"],
    registry=REGISTRY,
)
