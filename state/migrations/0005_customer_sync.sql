-- What sfstripe last wrote to each field of each record on either side: a change that comes
-- back with the same value is sfstripe's own echo, not a new change.
CREATE TABLE sync_writes (
    side text NOT NULL CHECK (side IN ('salesforce', 'stripe')),
    record_id text NOT NULL,
    field text NOT NULL,
    value jsonb NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (side, record_id, field)
);

-- The latest applied state of the Stripe objects behind an Account's billing status (invoices,
-- subscriptions, the customer, payment method references: never card data), so that events
-- arriving out of order are applied by monotonic rules.
CREATE TABLE stripe_objects (
    object_id text PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('invoice', 'subscription', 'customer', 'payment_method')),
    stripe_customer text NOT NULL,
    event_created bigint NOT NULL,
    status text,
    body jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stripe_objects_customer_idx ON stripe_objects (stripe_customer, kind);
