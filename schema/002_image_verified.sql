-- 002_image_verified.sql - the cache of SHA-256 checks done before a boot.
--
-- The QEMU driver checks an image file against its registered sha256
-- before every boot (lua/djinn/drivers/qemu.lua). Hashing a multi-GB file
-- at every build is slow, so a successful check is remembered here, keyed
-- by the file's identity: device, inode, size, and the modification and
-- status-change times in nanoseconds. Any write to the file changes mtime
-- and ctime (ctime cannot be set back by a user), and a replaced file has
-- another inode, so a changed file never matches its cached row and is
-- hashed again. Rows are per path; a new check replaces the old row.
CREATE TABLE image_verified (
    path        TEXT PRIMARY KEY CHECK (substr(path, 1, 1) = '/'),
    dev         INTEGER NOT NULL,
    ino         INTEGER NOT NULL,
    size        INTEGER NOT NULL CHECK (size >= 0),
    mtime_ns    INTEGER NOT NULL,
    ctime_ns    INTEGER NOT NULL,
    sha256      TEXT NOT NULL CHECK (length(sha256) = 64
                                     AND sha256 NOT GLOB '*[^0-9a-f]*'),
    verified_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
