-- 005_image_provenance.sql - where an image came from, and whether it was
-- proven usable (issue 14).
--
-- image_sources: one row per image imported from a URL (Djinn keeps the
-- same in image_downloads). url never holds credentials: the importer
-- removes "user:password@" before the row is written (ext/fetch.c). The
-- row goes with its image
-- (trigger below; foreign keys are not switched on for every connection).
--
-- image_checks: the results of the image-contract check (`djinn-lua image
-- check --boot`), keyed by content, not by name: a verdict belongs to the
-- bytes that were booted, so every name of the same content shares it,
-- and a base image (a file under <disks>, no row in images) has one too.
-- machine says what booted it (accelerator, memory, QEMU version); items
-- is the JSON array of checked items ({name, status, detail, fix}).
CREATE TABLE image_sources (
    image_id     INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
    url          TEXT NOT NULL CHECK (length(url) BETWEEN 1 AND 8192),
    content_type TEXT,
    bytes        INTEGER NOT NULL CHECK (bytes >= 0),
    sha256       TEXT NOT NULL CHECK (length(sha256) = 64
                                      AND sha256 NOT GLOB '*[^0-9a-f]*'),
    started_at   TEXT NOT NULL,
    fetched_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TRIGGER image_sources_gone AFTER DELETE ON images
BEGIN
    DELETE FROM image_sources WHERE image_id = OLD.id;
END;

CREATE TABLE image_checks (
    id         INTEGER PRIMARY KEY,
    sha256     TEXT NOT NULL CHECK (length(sha256) = 64
                                    AND sha256 NOT GLOB '*[^0-9a-f]*'),
    verdict    TEXT NOT NULL CHECK (verdict IN ('usable', 'warnings',
                                                'unusable')),
    items      TEXT NOT NULL CHECK (json_valid(items)
                                    AND json_type(items) = 'array'),
    machine    TEXT NOT NULL DEFAULT '',
    checked_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX image_checks_sha256 ON image_checks(sha256, checked_at);

-- The newest check of each content.
CREATE VIEW image_last_check AS
SELECT c.sha256 AS sha256, c.verdict AS verdict, c.items AS items,
       c.machine AS machine, c.checked_at AS checked_at
FROM image_checks c
WHERE c.id = (SELECT id FROM image_checks d WHERE d.sha256 = c.sha256
              ORDER BY d.checked_at DESC, d.id DESC LIMIT 1);

-- image_list gains where the image came from and its content's last check
-- (NULL when it was registered from a file, or never checked).
DROP VIEW image_list;
CREATE VIEW image_list AS
SELECT i.id           AS id,
       i.owner        AS owner,
       n.path         AS namespace,
       i.name         AS name,
       i.driver       AS driver,
       ifnull(n.visibility, 'private') AS visibility,
       i.sha256       AS sha256,
       i.file_size    AS file_size,
       i.virtual_size AS virtual_size,
       i.author       AS author,
       i.created_at   AS created_at,
       s.url          AS source_url,
       s.fetched_at   AS source_fetched_at,
       c.verdict      AS check_verdict,
       c.checked_at   AS checked_at
FROM images AS i
LEFT JOIN namespaces AS n ON n.id = i.namespace_id
LEFT JOIN image_sources AS s ON s.image_id = i.id
LEFT JOIN image_last_check AS c ON c.sha256 = i.sha256
ORDER BY i.owner, n.path NULLS FIRST, i.name;
