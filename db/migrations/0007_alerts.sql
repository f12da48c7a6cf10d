-- The alert service (docs/alerting.md): rules, the state and history of
-- alerts, the notification outbox and the evaluator's checkpoints.

-- Rules, per tenant. `spec` is the telemetry.v1.Rule as the API returns it
-- (the columns beside it are what lookups need).
CREATE TABLE alert_rules (
  tenant_id   bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  rule_id     text NOT NULL,
  name        text NOT NULL,
  version     bigint NOT NULL,
  spec        bytea NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, rule_id)
);
CREATE UNIQUE INDEX alert_rules_id ON alert_rules (rule_id);

-- One row; every rule change bumps it in the same transaction, so the alert
-- service sees a change with one cheap poll.
CREATE TABLE alert_rules_generation (
  id          boolean PRIMARY KEY DEFAULT true CHECK (id),
  generation  bigint NOT NULL
);
INSERT INTO alert_rules_generation VALUES (true, 0);

-- Every transition, once: (fingerprint, sequence) is the idempotency key of
-- a replay. `event` is the telemetry.v1.AlertEvent as published.
CREATE TABLE alert_history (
  event_id      bigserial PRIMARY KEY,
  tenant_id     bigint NOT NULL,
  fingerprint   text NOT NULL,
  sequence      bigint NOT NULL,
  rule_id       text NOT NULL,
  rule_version  bigint NOT NULL,
  device        text NOT NULL,
  sensor        text NOT NULL,
  from_state    smallint NOT NULL,
  to_state      smallint NOT NULL,
  value         double precision,
  window_start  bigint,
  window_end    bigint,
  event_time    bigint NOT NULL,
  severity      smallint NOT NULL,
  muted         boolean NOT NULL DEFAULT false,
  event         bytea NOT NULL,
  detected_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (fingerprint, sequence)
);
CREATE INDEX alert_history_tenant ON alert_history (tenant_id, event_id);

-- The newest transition of each fingerprint.
CREATE TABLE alert_current (
  fingerprint  text PRIMARY KEY,
  tenant_id    bigint NOT NULL,
  rule_id      text NOT NULL,
  device       text NOT NULL,
  sensor       text NOT NULL,
  state        smallint NOT NULL,
  sequence     bigint NOT NULL,
  event_id     bigint NOT NULL
);
CREATE INDEX alert_current_tenant ON alert_current (tenant_id, state);

-- Notifications still to send, written in the transaction that records the
-- transition: a restart loses none, a slow receiver delays no evaluation.
CREATE TABLE alert_outbox (
  id               bigserial PRIMARY KEY,
  event_id         bigint NOT NULL REFERENCES alert_history(event_id) ON DELETE CASCADE,
  target           text NOT NULL,
  attempts         integer NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  created_at       timestamptz NOT NULL DEFAULT now(),
  last_error       text NOT NULL DEFAULT ''
);
CREATE INDEX alert_outbox_due ON alert_outbox (next_attempt_at);

-- What became of each notification: delivered, gave_up (after the bounded
-- retry time) or muted (by a silence).
CREATE TABLE alert_deliveries (
  event_id      bigint NOT NULL REFERENCES alert_history(event_id) ON DELETE CASCADE,
  target        text NOT NULL,
  outcome       text NOT NULL,
  attempts      integer NOT NULL,
  last_error    text NOT NULL DEFAULT '',
  finished_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (event_id, target)
);

-- The evaluator's state of one readings partition and the offset it covers.
CREATE TABLE alert_checkpoints (
  consumer_group  text NOT NULL,
  partition       integer NOT NULL,
  next_offset     bigint NOT NULL,
  state           bytea NOT NULL,
  updated_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer_group, partition)
);

-- Silences: mute notifications of matching alerts for a time. `spec` is the
-- telemetry.v1.Silence.
CREATE TABLE alert_silences (
  tenant_id   bigint NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  silence_id  text NOT NULL,
  starts_at   bigint NOT NULL,
  ends_at     bigint NOT NULL,
  spec        bytea NOT NULL,
  PRIMARY KEY (tenant_id, silence_id)
);
CREATE INDEX alert_silences_active ON alert_silences (tenant_id, ends_at);
