-- The benchmark's dataset, shaped like the original app (scripts/bench.sh generate_data).
-- psql variables: nbus, nassign, nevent, nstat, nreport (row counts for the scale).
SET synchronous_commit = off;
CREATE TABLE "AndroidRequests_bus" (
    id serial PRIMARY KEY,
    plate varchar(12) NOT NULL UNIQUE,
    service varchar(8) NOT NULL,
    "timeStamp" timestamptz NOT NULL
);
CREATE TABLE "AndroidRequests_busassignment" (
    id serial PRIMARY KEY,
    bus_id integer NOT NULL REFERENCES "AndroidRequests_bus"(id) DEFERRABLE INITIALLY DEFERRED,
    route varchar(8) NOT NULL,
    "timeStamp" timestamptz NOT NULL
);
CREATE TABLE "AndroidRequests_event" (
    id bigserial PRIMARY KEY,
    assignment_id integer NOT NULL REFERENCES "AndroidRequests_busassignment"(id) DEFERRABLE INITIALLY DEFERRED,
    kind varchar(16) NOT NULL,
    latitude numeric(9,6),
    longitude numeric(9,6),
    "timeStamp" timestamptz NOT NULL
);
CREATE TABLE "AndroidRequests_statistic" (
    id serial PRIMARY KEY,
    route varchar(8) NOT NULL,
    day date NOT NULL,
    trips integer NOT NULL,
    average_speed numeric(6,2),
    "timeStamp" timestamptz NOT NULL
);
-- The wide one: many columns of every common type, and the image file name.
CREATE TABLE "AndroidRequests_report" (
    id serial PRIMARY KEY,
    assignment_id integer REFERENCES "AndroidRequests_busassignment"(id) DEFERRABLE INITIALLY DEFERRED,
    bus_id integer REFERENCES "AndroidRequests_bus"(id) DEFERRABLE INITIALLY DEFERRED,
    "reporterName" varchar(120),
    email varchar(200),
    phone varchar(30),
    category varchar(40) NOT NULL,
    status varchar(20) NOT NULL,
    severity smallint NOT NULL,
    message text,
    description text,
    "stopCode" varchar(12),
    latitude numeric(10,7),
    longitude numeric(10,7),
    speed numeric(6,2),
    heading integer,
    accuracy double precision,
    "reportedAt" timestamptz NOT NULL,
    "resolvedAt" timestamp,
    "reportedDay" date NOT NULL,
    "appVersion" varchar(20),
    "deviceModel" varchar(60),
    "osVersion" varchar(20),
    "isPublic" boolean NOT NULL,
    extra json,
    "imageName" varchar(255),
    "timeStamp" timestamptz NOT NULL
);

INSERT INTO "AndroidRequests_bus" (plate, service, "timeStamp")
    SELECT 'BJ' || lpad(g::text, 8, '0'), (ARRAY['506', '210', 'D09', '405', 'B27'])[1 + g % 5],
           now() - interval '30 days' - g * interval '1 minute'
    FROM generate_series(1, :nbus) g;
INSERT INTO "AndroidRequests_busassignment" (bus_id, route, "timeStamp")
    SELECT 1 + g % :nbus, (ARRAY['506I', '210R', 'D09I', '405R', 'B27I'])[1 + g % 5],
           now() - interval '1 day' - g * interval '7 seconds'
    FROM generate_series(1, :nassign) g;
INSERT INTO "AndroidRequests_event" (assignment_id, kind, latitude, longitude, "timeStamp")
    SELECT 1 + (g::bigint * 7919) % :nassign, (ARRAY['crowded', 'late', 'dirty', 'ok', 'broken', 'detour'])[1 + g % 6],
           round((-33.45 - random() / 10)::numeric, 6), round((-70.66 + random() / 10)::numeric, 6),
           now() - interval '1 day' - g * interval '1 second'
    FROM generate_series(1, :nevent) g;
INSERT INTO "AndroidRequests_statistic" (route, day, trips, average_speed, "timeStamp")
    SELECT (ARRAY['506I', '210R', 'D09I', '405R', 'B27I'])[1 + g % 5], current_date - 1 - g / 5,
           100 + g % 37, 18.5 + (g % 100) / 10.0, now() - interval '1 day' - g * interval '1 minute'
    FROM generate_series(1, :nstat) g;
-- Text that compresses like real text, not like zeros: words, codes and hashes mixed.
INSERT INTO "AndroidRequests_report" (
    assignment_id, bus_id, "reporterName", email, phone, category, status, severity, message,
    description, "stopCode", latitude, longitude, speed, heading, accuracy, "reportedAt",
    "resolvedAt", "reportedDay", "appVersion", "deviceModel", "osVersion", "isPublic", extra,
    "imageName", "timeStamp")
SELECT 1 + (g::bigint * 104729) % :nassign,
       1 + g % :nbus,
       (ARRAY['Ana', 'Benjamín', 'Camila', 'Diego', 'Elena', 'Felipe', 'Gabriela'])[1 + g % 7] || ' '
           || (ARRAY['González', 'Muñoz', 'Rojas', 'Díaz', 'Pérez', 'Soto', 'Contreras', 'Silva'])[1 + g % 8],
       'user' || g || '@' || (ARRAY['gmail.com', 'hotmail.com', 'uc.cl', 'yahoo.es'])[1 + g % 4],
       '+56 9 ' || lpad(((g::bigint * 7907) % 100000000)::text, 8, '0'),
       (ARRAY['crowded', 'late', 'dirty', 'driver', 'broken', 'route', 'other'])[1 + g % 7],
       (ARRAY['open', 'seen', 'closed', 'spam'])[1 + g % 4],
       1 + g % 5,
       'The bus ' || (ARRAY['was very late', 'skipped my stop', 'was full', 'had a broken door', 'took another route'])[1 + g % 5]
           || ' at ' || to_char(now() - g * interval '13 minutes', 'HH24:MI') || ', ref ' || md5(g::text),
       concat_ws(' ', 'Passenger report', g, 'on route', (ARRAY['506I', '210R', 'D09I', '405R', 'B27I'])[1 + g % 5],
           md5('a' || g), 'waited', g % 45, 'minutes near stop PA', g % 900, md5('b' || g),
           'the driver said nothing and the screen showed', md5('c' || g), md5('d' || g),
           'additional notes from the reporter follow:', md5('e' || g), md5('f' || g), md5('g' || g),
           'end of report', md5('h' || g), md5('i' || g), md5('j' || g)),
       'PA' || (g % 900),
       round((-33.45 - random() / 10)::numeric, 7), round((-70.66 + random() / 10)::numeric, 7),
       round((random() * 60)::numeric, 2), (g * 37) % 360, random() * 50,
       now() - interval '1 day' - g * interval '5 seconds',
       CASE WHEN g % 3 = 0 THEN (now() - g * interval '4 seconds')::timestamp END,
       current_date - 1 - g / 2000,
       '3.' || (g % 12) || '.' || (g % 7),
       (ARRAY['Samsung SM-A515F', 'Motorola moto g(8)', 'Xiaomi Redmi Note 8', 'Huawei P30 lite'])[1 + g % 4],
       'Android ' || (8 + g % 5),
       g % 5 <> 0,
       json_build_object('battery', g % 100, 'network', (ARRAY['wifi', '4g', '3g'])[1 + g % 3],
           'session', md5('k' || g), 'gps', json_build_object('fix', g % 2 = 0, 'sats', g % 12)),
       CASE WHEN g % 200 = 0 THEN 'report_' || g || '.jpeg' END,
       now() - interval '1 day' - g * interval '3 seconds'
FROM generate_series(1, :nreport) g;

-- What the sender's partial needs: an index on every changed_at column.
CREATE INDEX "AndroidRequests_bus_timeStamp" ON "AndroidRequests_bus" ("timeStamp");
CREATE INDEX "AndroidRequests_busassignment_timeStamp" ON "AndroidRequests_busassignment" ("timeStamp");
CREATE INDEX "AndroidRequests_event_timeStamp" ON "AndroidRequests_event" ("timeStamp");
CREATE INDEX "AndroidRequests_statistic_timeStamp" ON "AndroidRequests_statistic" ("timeStamp");
CREATE INDEX "AndroidRequests_report_timeStamp" ON "AndroidRequests_report" ("timeStamp");
-- Foreign-key columns get an index too, as Django makes them.
CREATE INDEX ON "AndroidRequests_busassignment" (bus_id);
CREATE INDEX ON "AndroidRequests_event" (assignment_id);
CREATE INDEX ON "AndroidRequests_report" (assignment_id);
CREATE INDEX ON "AndroidRequests_report" (bus_id);
