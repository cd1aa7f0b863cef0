-- 003_store_by_content.sql - files are found by content, and the registry
-- has an identity that marks its store.
--
-- Until now every image row kept the absolute path of its stored file
-- (store_path), and everything that decided "is this file still needed?"
-- compared those strings: a registry moved to another directory, or a
-- damaged store_path, made repair delete files that rows still needed.
-- The store names every file <sha256>.qcow2, so the row's sha256 already
-- says which file it needs: the path is <store>/<sha256>.qcow2, computed
-- from the store in effect (djinn_store()) whenever it is needed, and a
-- file is kept while any row has its sha256. The column goes.
--
-- registry_identity holds one random id per registry. The store directory
-- gets a marker file (.djinn-store) naming the registry that owns it, so
-- that a second registry pointed at the same store, or a registry file that
-- was lost and silently re-created empty, refuses to write to the store or
-- repair it (it would otherwise delete the first registry's images as
-- orphans). See ext/store.c, "The store's owner".
DROP VIEW image_list;
DROP INDEX images_store_path;
ALTER TABLE images DROP COLUMN store_path;
CREATE INDEX images_sha256 ON images(sha256);

CREATE TABLE registry_identity (
    only       INTEGER PRIMARY KEY CHECK (only = 1),
    id         TEXT NOT NULL CHECK (length(id) = 32
                                    AND id NOT GLOB '*[^0-9a-f]*'),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
INSERT INTO registry_identity(only, id) VALUES (1, lower(hex(randomblob(16))));

-- For humans (and djinn-lua's registry:list()): the namespace as a path.
-- The stored file is image_path(namespace, name), or
-- djinn_store() || '/' || sha256 || '.qcow2'.
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
       i.created_at   AS created_at
FROM images AS i
LEFT JOIN namespaces AS n ON n.id = i.namespace_id
ORDER BY i.owner, n.path NULLS FIRST, i.name;
