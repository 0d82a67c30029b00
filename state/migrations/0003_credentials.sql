-- Credentials sfstripe must remember across restarts, such as a rotated Salesforce refresh token.
CREATE TABLE credentials (
    name text PRIMARY KEY,
    value text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
