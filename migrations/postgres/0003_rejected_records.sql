-- The quarantine: vendor records that could not be stored, kept as they
-- arrived with the reason, so an operator can see and replay them.
CREATE TABLE rejected_records (
    tenant_id    TEXT    NOT NULL,
    record_id    TEXT    NOT NULL,
    source       BIGINT,
    channel      TEXT    NOT NULL,
    reason       TEXT    NOT NULL,
    payload      BYTEA    NOT NULL,
    payload_size BIGINT NOT NULL,
    receive_time BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, record_id)
);
CREATE INDEX rejected_records_by_time ON rejected_records (tenant_id, receive_time, record_id);
