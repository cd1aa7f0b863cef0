-- verify.sql: image_verify (the SHA-256 check before a boot and its cache,
-- table image_verified) and the view store_refs (what references a stored
-- file). The runner opens a fresh reg.db; the store is images/ beside it.

select 'verify.register', image_register('team/ci', 'v', 'fixtures/plain.qcow2') = 1;
select 'verify.hashed', image_verify(image_path('team/ci', 'v'), image_sha256('fixtures/plain.qcow2')) = 'hashed';
select 'verify.row', (select count(*) from image_verified where path = image_path('team/ci', 'v') and sha256 = image_sha256('fixtures/plain.qcow2')) = 1;
select 'verify.identity', (select size from image_verified) = length(readfile('fixtures/plain.qcow2'));
select 'verify.cached', image_verify(image_path('team/ci', 'v'), image_sha256('fixtures/plain.qcow2')) = 'cached';
select 'verify.null_path', image_verify(NULL, image_sha256('fixtures/plain.qcow2')) is null;
select 'verify.null_sha', image_verify(image_path('team/ci', 'v'), NULL) is null;

-- A stale cache row (another identity) is not trusted: the file is hashed.
update image_verified set mtime_ns = mtime_ns - 1;
select 'verify.stale', image_verify(image_path('team/ci', 'v'), image_sha256('fixtures/plain.qcow2')) = 'hashed';
select 'verify.refreshed', (select count(*) from image_verified) = 1;

-- A file that does not match: an error naming both hashes; the row goes.
-- error: image_verify: the file
select image_verify(image_path('team/ci', 'v'), '0000000000000000000000000000000000000000000000000000000000000000');
select 'verify.mismatch_drops_row', (select count(*) from image_verified) = 0;
-- error: (SHA-256 
select image_verify(image_path('team/ci', 'v'), '1111111111111111111111111111111111111111111111111111111111111111');
-- error: image_verify: path 'fixtures/plain.qcow2' is not absolute
select image_verify('fixtures/plain.qcow2', image_sha256('fixtures/plain.qcow2'));
-- error: image_verify: sha256 'ABC' is not 64 lowercase hex digits
select image_verify(image_path('team/ci', 'v'), 'ABC');
-- error: image_verify: /nonexistent/x.qcow2: No such file or directory
select image_verify('/nonexistent/x.qcow2', image_sha256('fixtures/plain.qcow2'));

-- store_refs: one row per reference to a stored file.
select 'store_refs.one', (select count(*) from store_refs) = 1;
select 'store_refs.kind', (select kind from store_refs) = 'image';
select 'store_refs.ref_id', (select ref_id from store_refs) = 1;
select 'store_refs.sha256', (select sha256 from store_refs) = image_sha256('fixtures/plain.qcow2');
select 'store_refs.share', image_register(NULL, 'w', 'fixtures/plain.qcow2') = 2;
select 'store_refs.two', (select count(*) from store_refs where sha256 = image_sha256('fixtures/plain.qcow2')) = 2;
select 'store_refs.remove_one', image_remove('team/ci', 'v') = 1;
select 'store_refs.file_stays', qcow2_validate(image_path(NULL, 'w')) = 1;
select 'store_refs.remove_last', image_remove(NULL, 'w') = 1;
select 'store_refs.none', (select count(*) from store_refs) = 0;
select 'store_refs.file_gone', json_extract(djinn_fsck(), '$.files') = 0;
select 'store_refs.fsck', json_extract(djinn_fsck(), '$.ok') = 1;
