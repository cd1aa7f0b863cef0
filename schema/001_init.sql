-- 001_init.sql - the registry: namespaces, images, settings, image_list.
--
-- Applied by the extension (ext/djinn.c) inside one BEGIN IMMEDIATE
-- transaction, which then sets PRAGMA user_version = 1 and
-- PRAGMA application_id = 0x446a6e6e ("Djnn").
--
-- Namespaces follow Djinn (docs/djinn-compat.md §2.2): path 'a/b/c' per owner,
-- level 0-based (at most 20 levels: 0..19), root_id = own id for a root,
-- children take the visibility of their root. Unlike Djinn HEAD,
-- (owner, path) is unique, so on-the-fly creation never duplicates an
-- ancestor, and deleting a namespace deletes its whole subtree.
--
-- Images: one row per (owner, namespace or none, name). The file lives in
-- the content-addressed store as <store>/<sha256>.qcow2; rows with the same
-- content share one file (store_path), which image_remove() unlinks only
-- when no other row references it. Deleting a namespace keeps its images,
-- which become personal images of the owner (namespace_id SET NULL), as in
-- Djinn; if that would clash with a personal image of the same name the
-- delete fails on the unique index.

CREATE TABLE namespaces (
    id          INTEGER PRIMARY KEY,
    owner       TEXT NOT NULL CHECK (length(owner) BETWEEN 1 AND 64),
    path        TEXT NOT NULL CHECK (length(path) BETWEEN 1 AND 1024),
    name        TEXT NOT NULL CHECK (length(name) >= 1
                                     AND name NOT GLOB '*[^A-Za-z0-9]*'),
    parent_id   INTEGER REFERENCES namespaces(id) ON DELETE CASCADE,
    root_id     INTEGER REFERENCES namespaces(id) ON DELETE CASCADE,
    level       INTEGER NOT NULL CHECK (level BETWEEN 0 AND 19),
    visibility  TEXT NOT NULL DEFAULT 'private'
                CHECK (visibility IN ('private', 'internal', 'public')),
    description TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (owner, path),
    CHECK ((parent_id IS NULL) = (level = 0))
);
CREATE INDEX namespaces_parent ON namespaces(parent_id);
CREATE INDEX namespaces_root ON namespaces(root_id);

-- A root is its own root.
CREATE TRIGGER namespaces_root_id AFTER INSERT ON namespaces
WHEN NEW.parent_id IS NULL
BEGIN
    UPDATE namespaces SET root_id = NEW.id WHERE id = NEW.id;
END;

-- Changing a root's visibility changes the whole tree (Djinn Store.Update).
CREATE TRIGGER namespaces_visibility_cascade
AFTER UPDATE OF visibility ON namespaces
WHEN NEW.parent_id IS NULL
BEGIN
    UPDATE namespaces SET visibility = NEW.visibility
    WHERE root_id = NEW.id AND id != NEW.id;
END;

-- A child always has its root's visibility.
CREATE TRIGGER namespaces_visibility_child
BEFORE UPDATE OF visibility ON namespaces
WHEN NEW.parent_id IS NOT NULL
 AND NEW.visibility != (SELECT visibility FROM namespaces WHERE id = NEW.root_id)
BEGIN
    SELECT RAISE(ABORT, 'namespaces: a child namespace has the visibility of its root namespace; change the root''s visibility instead');
END;

CREATE TABLE images (
    id           INTEGER PRIMARY KEY,
    namespace_id INTEGER REFERENCES namespaces(id) ON DELETE SET NULL,
    owner        TEXT NOT NULL CHECK (length(owner) BETWEEN 1 AND 64),
    author       TEXT NOT NULL,
    name         TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 255
                                      AND name NOT GLOB '*[^A-Za-z0-9_-]*'),
    driver       TEXT NOT NULL DEFAULT 'qemu'
                 CHECK (driver IN ('qemu', 'docker')),
    sha256       TEXT NOT NULL CHECK (length(sha256) = 64
                                      AND sha256 NOT GLOB '*[^0-9a-f]*'),
    file_size    INTEGER NOT NULL CHECK (file_size >= 0),
    virtual_size INTEGER NOT NULL CHECK (virtual_size >= 0),
    store_path   TEXT NOT NULL CHECK (substr(store_path, 1, 1) = '/'),
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
-- NULLs are distinct in a UNIQUE constraint, so personal images (no
-- namespace) are made unique through ifnull(namespace_id, 0).
CREATE UNIQUE INDEX images_name ON images(owner, ifnull(namespace_id, 0), name);
CREATE INDEX images_namespace ON images(namespace_id);
CREATE INDEX images_store_path ON images(store_path);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- For humans (and djinn-lua's registry:list()): the namespace as a path.
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
       i.store_path   AS store_path,
       i.author       AS author,
       i.created_at   AS created_at
FROM images AS i
LEFT JOIN namespaces AS n ON n.id = i.namespace_id
ORDER BY i.owner, n.path NULLS FIRST, i.name;
