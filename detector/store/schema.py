"""The hazard store's schema, as numbered migrations (``PRAGMA user_version`` holds the version; on PostgreSQL the
``store_version`` table). A migration is SQLite's text, which :func:`detector.store.postgres.ddl` carries over to
PostgreSQL, or a :class:`PerDialect` where the two differ in substance (PostGIS): both forms side by side."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PerDialect:
    """One migration written for each backend; an empty text changes nothing there but still counts."""

    sqlite: str
    postgresql: str


def for_dialect(migration: str | PerDialect, dialect: str) -> str:
    """The migration's text for ``dialect`` (``sqlite`` or ``postgresql``)."""
    if isinstance(migration, PerDialect):
        return getattr(migration, dialect)
    return migration


MIGRATIONS: list[str | PerDialect] = [
    # 1: drives, hazards, sightings, passes (for misses), tickets, outbox, audit events.
    """
    CREATE TABLE drives (
        id TEXT PRIMARY KEY,
        content_hash TEXT NOT NULL UNIQUE,
        video TEXT NOT NULL,
        track TEXT NOT NULL,
        started_utc REAL,
        ended_utc REAL,
        distance_m REAL,
        frames_sampled INTEGER,
        camera TEXT,
        processed_at TEXT NOT NULL
    );
    CREATE TABLE hazards (
        id INTEGER PRIMARY KEY,
        class TEXT NOT NULL,
        lat REAL NOT NULL,
        lon REAL NOT NULL,
        uncertainty_m REAL NOT NULL,
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        sighting_count INTEGER NOT NULL,
        drive_count INTEGER NOT NULL,
        confidence REAL NOT NULL,
        width_m REAL,
        area_class TEXT,
        lane_offset_m REAL,
        severity REAL NOT NULL DEFAULT 0,
        status TEXT NOT NULL CHECK (status IN
            ('candidate', 'confirmed', 'rejected', 'possibly_repaired', 'repaired', 'merged')),
        misses INTEGER NOT NULL DEFAULT 0,
        best_sighting_id INTEGER,
        evidence_path TEXT,
        merged_into INTEGER REFERENCES hazards(id),
        position_locked INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX hazards_status ON hazards(status);
    CREATE INDEX hazards_latlon ON hazards(lat, lon);
    CREATE TABLE sightings (
        id INTEGER PRIMARY KEY,
        hazard_id INTEGER NOT NULL REFERENCES hazards(id),
        drive_id TEXT NOT NULL REFERENCES drives(id),
        frame_index INTEGER NOT NULL,
        utc REAL NOT NULL,
        class TEXT NOT NULL,
        confidence REAL NOT NULL,
        lat REAL NOT NULL,
        lon REAL NOT NULL,
        range_m REAL NOT NULL,
        lateral_m REAL NOT NULL,
        uncertainty_m REAL NOT NULL,
        width_m REAL,
        x1 REAL, y1 REAL, x2 REAL, y2 REAL,
        vehicle_lat REAL, vehicle_lon REAL, heading REAL,
        far INTEGER NOT NULL DEFAULT 0,
        evidence_path TEXT
    );
    CREATE INDEX sightings_hazard ON sightings(hazard_id);
    CREATE INDEX sightings_drive ON sightings(drive_id);
    CREATE TABLE passes (
        hazard_id INTEGER NOT NULL REFERENCES hazards(id),
        drive_id TEXT NOT NULL REFERENCES drives(id),
        frames_in_view INTEGER NOT NULL,
        seen INTEGER NOT NULL,
        PRIMARY KEY (hazard_id, drive_id)
    );
    CREATE TABLE tickets (
        hazard_id INTEGER PRIMARY KEY REFERENCES hazards(id),
        service_code TEXT,
        service_request_id TEXT,
        token TEXT,
        status TEXT NOT NULL,
        opened_at TEXT,
        closed_at TEXT,
        status_notes TEXT,
        linked INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        hazard_id INTEGER NOT NULL UNIQUE REFERENCES hazards(id),
        state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL DEFAULT 0,
        last_error TEXT,
        created_at TEXT NOT NULL
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        hazard_id INTEGER REFERENCES hazards(id),
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT
    );
    CREATE INDEX events_hazard ON events(hazard_id);
    """,
    # 2: the review app: its users and sign-in sessions, and each drive's simplified track for the map.
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL CHECK (role IN ('reviewer', 'viewer')),
        password_hash TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE INDEX sessions_user ON sessions(user_id);
    CREATE TABLE drive_tracks (
        drive_id TEXT PRIMARY KEY REFERENCES drives(id),
        geojson TEXT NOT NULL
    );
    """,
    # 3: the 106 service's notice on each request (GeoReport service_notice, e.g. when crews will come).
    """
    ALTER TABLE tickets ADD COLUMN service_notice TEXT;
    """,
    # 4: the fleet. On the hub: vehicles (their token as a hash) and the segments each sent (keyed by the
    # segment's content digest). On a vehicle: the queue of finished segments waiting for the hub.
    """
    CREATE TABLE hub_vehicles (
        name TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        revoked_at TEXT,
        last_contact_at TEXT,
        segments INTEGER NOT NULL DEFAULT 0,
        drives INTEGER NOT NULL DEFAULT 0,
        queued INTEGER  -- segments the vehicle said it still had queued, at its last upload
    );
    CREATE TABLE hub_segments (
        digest TEXT PRIMARY KEY,
        segment_id TEXT NOT NULL UNIQUE,
        vehicle TEXT NOT NULL REFERENCES hub_vehicles(name),
        drive_id TEXT NOT NULL,
        sightings INTEGER NOT NULL,
        received_at TEXT NOT NULL
    );
    CREATE INDEX hub_segments_drive ON hub_segments(drive_id);
    CREATE TABLE hub_queue (
        id INTEGER PRIMARY KEY,
        segment_id TEXT NOT NULL UNIQUE,
        digest TEXT NOT NULL,
        payload BLOB NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'refused')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        created_at TEXT NOT NULL,
        sent_at TEXT
    );
    """,
    # 5: the patrol a drive belongs to (a live run's consecutive segments share one); NULL: the drive itself.
    """
    ALTER TABLE drives ADD COLUMN trip TEXT;
    """,
    # 6: on a vehicle: a queued segment the hub kept failing on (5xx), set aside so the ones behind it go first.
    """
    ALTER TABLE hub_queue ADD COLUMN set_aside_at TEXT;
    """,
    # 7: the city's GIS layers the drives were merged with (detector.store.layers), so that every later command on
    # the store (review, export, tickets, the hub) uses the same ones without being told again.
    """
    CREATE TABLE store_layers (
        role TEXT PRIMARY KEY CHECK (role IN ('streets', 'covers')),
        path TEXT NOT NULL,
        name_field TEXT,
        recorded_at TEXT NOT NULL
    );
    """,
    # 8: PostGIS geometry (PostgreSQL only; SQLite keeps lat/lon): points of hazards and sightings, each drive's
    # track as a LineString, all SRID 4326 and generated from the columns every write already fills, with GiST
    # indexes (on geography too: the merge's candidate query is ST_DWithin in metres). Views for the GIS:
    # docs/postgis.md.
    PerDialect(
        sqlite="",
        postgresql="""
        CREATE EXTENSION IF NOT EXISTS postgis;
        ALTER TABLE hazards ADD COLUMN geom geometry(Point, 4326)
            GENERATED ALWAYS AS (ST_SetSRID(ST_MakePoint(lon, lat), 4326)) STORED;
        CREATE INDEX hazards_geom ON hazards USING gist (geom);
        CREATE INDEX hazards_geog ON hazards USING gist ((geom::geography));
        ALTER TABLE sightings ADD COLUMN geom geometry(Point, 4326)
            GENERATED ALWAYS AS (ST_SetSRID(ST_MakePoint(lon, lat), 4326)) STORED;
        CREATE INDEX sightings_geom ON sightings USING gist (geom);
        ALTER TABLE drive_tracks ADD COLUMN geom geometry(LineString, 4326)
            GENERATED ALWAYS AS (ST_SetSRID(ST_GeomFromGeoJSON(geojson), 4326)) STORED;
        CREATE INDEX drive_tracks_geom ON drive_tracks USING gist (geom);
        CREATE VIEW gis_hazards AS
            SELECT h.id, h.class, h.status, h.severity, h.confidence, h.uncertainty_m, h.width_m, h.area_class,
                h.lane_offset_m, h.sighting_count, h.drive_count, h.misses, h.first_seen, h.last_seen,
                h.created_at, h.updated_at, h.evidence_path, h.merged_into,
                t.service_code, t.service_request_id, t.status AS request_status, t.opened_at AS request_opened_at,
                t.closed_at AS request_closed_at, t.service_notice, o.state AS outbox_state, h.geom
            FROM hazards h LEFT JOIN tickets t ON t.hazard_id = h.id LEFT JOIN outbox o ON o.hazard_id = h.id;
        CREATE VIEW gis_sightings AS
            SELECT s.id, s.hazard_id, s.drive_id, s.frame_index, s.utc, s.class, s.confidence, s.range_m,
                s.lateral_m, s.uncertainty_m, s.width_m, s.far, s.evidence_path, s.geom
            FROM sightings s;
        CREATE VIEW gis_coverage AS
            SELECT d.id AS drive_id, COALESCE(d.trip, d.id) AS trip, d.started_utc, d.ended_utc, d.distance_m,
                d.frames_sampled, d.processed_at, t.geom
            FROM drives d JOIN drive_tracks t ON t.drive_id = d.id;
        """,
    ),
    # 9: the sign inventory (detector.store.signs): every standing sign the drives saw, merged across drives like
    # hazards; one passed in good view without being seen on signs.missing_after passes is ``missing``, and a
    # missing_sign hazard (``missing_hazard_id``) is held for a reviewer; one seen fallen is ``down`` (its
    # fallen_sign hazard is the pipeline's own). ``last_trip``: the patrol that last passed it.
    """
    CREATE TABLE signs (
        id INTEGER PRIMARY KEY,
        lat REAL NOT NULL,
        lon REAL NOT NULL,
        uncertainty_m REAL NOT NULL,
        kind TEXT,
        height_m REAL,
        tilt_deg REAL,
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        views INTEGER NOT NULL,
        drive_count INTEGER NOT NULL,
        confidence REAL NOT NULL,
        photo_path TEXT,
        status TEXT NOT NULL CHECK (status IN ('standing', 'down', 'missing')),
        misses INTEGER NOT NULL DEFAULT 0,
        last_trip TEXT,
        missing_hazard_id INTEGER REFERENCES hazards(id),
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX signs_latlon ON signs(lat, lon);
    """,
    # 10: the sign inventory as PostGIS points and a view for the GIS (PostgreSQL only, as 8).
    PerDialect(
        sqlite="",
        postgresql="""
        ALTER TABLE signs ADD COLUMN geom geometry(Point, 4326)
            GENERATED ALWAYS AS (ST_SetSRID(ST_MakePoint(lon, lat), 4326)) STORED;
        CREATE INDEX signs_geom ON signs USING gist (geom);
        CREATE VIEW gis_signs AS
            SELECT s.id, s.status, s.kind, s.height_m, s.tilt_deg, s.first_seen, s.last_seen, s.views, s.drive_count,
                s.confidence, s.misses, s.last_trip, s.missing_hazard_id, s.photo_path, s.geom
            FROM signs s;
        """,
    ),
    # 11: each hazard's street (the city's street layer, streets.layer, named at the merge: detector.store.streets),
    # so that the GIS reads it from gis_hazards and every export and request says the same; NULL: no street layer
    # yet, or no street within streets.max_distance_m. The view gains the column last (CREATE OR REPLACE keeps the
    # grants a DBA gave on it).
    PerDialect(
        sqlite="ALTER TABLE hazards ADD COLUMN street TEXT;",
        postgresql="""
        ALTER TABLE hazards ADD COLUMN street TEXT;
        CREATE OR REPLACE VIEW gis_hazards AS
            SELECT h.id, h.class, h.status, h.severity, h.confidence, h.uncertainty_m, h.width_m, h.area_class,
                h.lane_offset_m, h.sighting_count, h.drive_count, h.misses, h.first_seen, h.last_seen,
                h.created_at, h.updated_at, h.evidence_path, h.merged_into,
                t.service_code, t.service_request_id, t.status AS request_status, t.opened_at AS request_opened_at,
                t.closed_at AS request_closed_at, t.service_notice, o.state AS outbox_state, h.geom, h.street
            FROM hazards h LEFT JOIN tickets t ON t.hazard_id = h.id LEFT JOIN outbox o ON o.hazard_id = h.id;
        """,
    ),
]

SCHEMA_VERSION = len(MIGRATIONS)

# SQL over ``drives d``: the patrol a drive counts as (migration 5).
TRIP = "COALESCE(d.trip, d.id)"
