-- 004_store_refs.sql - one definition of "what references a stored file".
--
-- A file of the store, <store>/<sha256>.qcow2, is needed as long as a row
-- of this view has its sha256. Everything that decides whether a file may
-- go reads the view and nothing else (ext/store.c, store_refs_count):
-- image_remove (unlink the file after its last reference), image_register
-- (share identical content), djinn_fsck (orphans, repair), the store's
-- owner check and djinn_setting('store'). A later user of the store (a
-- cache of downloaded images) adds its rows here with UNION ALL.
--
-- kind names the table ('image'), ref_id the row's id there. The images
-- table is read NOT INDEXED: a damaged index must never make a needed file
-- look unneeded (repair would delete it). Registries hold hundreds of
-- images, not millions, so the scan costs nothing worth an index.
CREATE VIEW store_refs AS
SELECT 'image' AS kind, id AS ref_id, sha256 AS sha256
FROM images NOT INDEXED;
