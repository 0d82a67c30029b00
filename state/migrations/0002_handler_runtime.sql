-- The handler runtime: per-handler progress, per-lane checkpoints, persisted retries, dead
-- letters and replay requests.

-- One row per handler ever run: the offset it started from (the log head when it was first
-- seen, unless configured) and its low-water offset: every event at or below it is applied,
-- unwanted, or belongs to a parked customer. A restart reads the log from the lowest one.
CREATE TABLE handler_offsets (
    handler text PRIMARY KEY,
    start_offset bigint NOT NULL,
    low_water bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Per handler and customer (a lane), the last seq applied or passed as unwanted. It only moves
-- forward: a restart skips every event of the lane at or below it.
CREATE TABLE handler_checkpoints (
    handler text NOT NULL,
    customer text NOT NULL,
    last_seq bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (handler, customer)
);

-- The failing event of a lane and when to try it again; a lane is strictly ordered, so it has at
-- most one. Kept here so that the backoff schedule survives a restart.
CREATE TABLE handler_retries (
    handler text NOT NULL,
    customer text NOT NULL,
    seq bigint NOT NULL,
    log_offset bigint NOT NULL,
    attempts integer NOT NULL CHECK (attempts >= 1),
    next_at timestamptz NOT NULL,
    last_error text NOT NULL,
    first_failed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (handler, customer)
);

-- Events a handler gave up on; while one is `parked` its lane waits (order matters for billing).
-- An operator retries or skips it; `settled_at` is set once the lane has caught up after that.
CREATE TABLE dead_letters (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    handler text NOT NULL,
    customer text NOT NULL,
    seq bigint NOT NULL,
    log_offset bigint NOT NULL,
    source_event_id text NOT NULL,
    reason text NOT NULL,
    attempts integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    status text NOT NULL DEFAULT 'parked' CHECK (status IN ('parked', 'retried', 'skipped')),
    resolved_at timestamptz,
    resolution text,
    settled_at timestamptz
);
CREATE UNIQUE INDEX dead_letters_one_parked_per_lane
    ON dead_letters (handler, customer) WHERE status = 'parked';
CREATE INDEX dead_letters_unsettled ON dead_letters (handler) WHERE settled_at IS NULL;

-- Replays asked of the running leader (log replays and upstream position moves); the CLI that
-- asked follows `processed`/`total` and reads `result`.
CREATE TABLE replay_requests (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('log', 'position')),
    params jsonb NOT NULL,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'done', 'failed')),
    claimed_by text,
    processed bigint NOT NULL DEFAULT 0,
    total bigint,
    result jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX replay_requests_pending ON replay_requests (id) WHERE status = 'pending';
