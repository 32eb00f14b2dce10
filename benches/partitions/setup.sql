-- benches/partitions/run.sh, step 1: the two tables, filled but for the last 100,000 calls.
-- Two copies of the bench's calls, the same columns and indexes: calls_flat
-- as callscope has it, calls_part partitioned by month of call_time. The
-- last 100,000 calls (by call_id order) are kept out, to be COPYed in timed.

SET jit = off;
SET client_min_messages = warning;
SET maintenance_work_mem = '1GB';
DROP TABLE IF EXISTS calls_flat, calls_part, calls_tail;
CREATE TABLE calls_tail AS SELECT * FROM calls ORDER BY call_id DESC LIMIT 100000;
CREATE TABLE calls_flat (LIKE calls INCLUDING DEFAULTS);
CREATE TABLE calls_part (LIKE calls INCLUDING DEFAULTS) PARTITION BY RANGE (call_time);
CREATE TABLE calls_part_2026_08 PARTITION OF calls_part FOR VALUES FROM (1785542400000) TO (1788220800000);
CREATE TABLE calls_part_2026_09 PARTITION OF calls_part FOR VALUES FROM (1788220800000) TO (1790812800000);
CREATE TABLE calls_part_2026_10 PARTITION OF calls_part FOR VALUES FROM (1790812800000) TO (1793491200000);
CREATE TABLE calls_part_2026_11 PARTITION OF calls_part FOR VALUES FROM (1793491200000) TO (1796083200000);
CREATE TABLE calls_part_default PARTITION OF calls_part DEFAULT;
INSERT INTO calls_flat SELECT * FROM calls WHERE call_id NOT IN (SELECT call_id FROM calls_tail);
INSERT INTO calls_part SELECT * FROM calls_flat;
ALTER TABLE calls_flat ADD PRIMARY KEY (tenant_id, call_id), ADD UNIQUE (tenant_id, source, external_id);
-- A partitioned table's unique keys must hold the partition key.
ALTER TABLE calls_part ADD PRIMARY KEY (tenant_id, call_id, call_time), ADD UNIQUE (tenant_id, source, external_id, call_time);
