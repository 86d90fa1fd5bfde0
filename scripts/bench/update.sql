-- The partial cycle's change (scripts/bench.sh update_rows): 10,000 rows spread over every
-- table, each with a new changed_at and a changed value. psql variable: s (the scale).
WITH bus AS (
    UPDATE "AndroidRequests_bus" SET service = 'UPD', "timeStamp" = now()
    WHERE id IN (SELECT id FROM "AndroidRequests_bus" WHERE id % (4 * :s) = 1 ORDER BY id LIMIT 500)
    RETURNING 1
), assignment AS (
    UPDATE "AndroidRequests_busassignment" SET route = 'UPD', "timeStamp" = now()
    WHERE id IN (SELECT id FROM "AndroidRequests_busassignment" WHERE id % (97 * :s) = 3 ORDER BY id LIMIT 2000)
    RETURNING 1
), event AS (
    UPDATE "AndroidRequests_event" SET kind = 'updated', "timeStamp" = now()
    WHERE id IN (SELECT id FROM "AndroidRequests_event" WHERE id % (241 * :s) = 5 ORDER BY id LIMIT 4000)
    RETURNING 1
), statistic AS (
    UPDATE "AndroidRequests_statistic" SET trips = trips + 1, "timeStamp" = now()
    WHERE id IN (SELECT id FROM "AndroidRequests_statistic" WHERE id % (47 * :s) = 7 ORDER BY id LIMIT 1000)
    RETURNING 1
), report AS (
    UPDATE "AndroidRequests_report" SET status = 'updated', message = message || ' (edited)', "timeStamp" = now()
    WHERE id IN (SELECT id FROM "AndroidRequests_report" WHERE id % (37 * :s) = 0 ORDER BY id LIMIT 2500)
    RETURNING 1
)
SELECT (SELECT count(*) FROM bus) + (SELECT count(*) FROM assignment) + (SELECT count(*) FROM event)
     + (SELECT count(*) FROM statistic) + (SELECT count(*) FROM report);
