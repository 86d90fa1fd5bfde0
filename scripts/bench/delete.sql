-- The logical run's deletes (scripts/bench.sh delete_rows), after update.sql: 1,000 events
-- spread over the whole table. Nothing references an event, so no key breaks. None of them
-- is among the events update.sql changes (id % (241 * s) = 5): 1205 = 5 * 241, so these ids
-- have id % (241 * s) = 6, and the partial carries 10,000 updates plus 1,000 deletes of
-- other rows. 1,300,000 * s events / (1205 * s) leaves ~1,078 candidates: enough for 1,000.
-- psql variable: s (the scale).
WITH gone AS (
    DELETE FROM "AndroidRequests_event"
    WHERE id IN (SELECT id FROM "AndroidRequests_event" WHERE id % (1205 * :s) = 6 ORDER BY id LIMIT 1000)
    RETURNING 1
)
SELECT count(*) FROM gone;
