-- settings.sql: djinn_setting, djinn_store, djinn_fsck, image_sha256,
-- djinn_version and the schema the extension applied.

select 'schema.application_id', (select application_id from pragma_application_id) = 1147825774;
select 'schema.user_version', (select user_version from pragma_user_version) >= 1;
select 'schema.journal_mode', (select journal_mode from pragma_journal_mode) = 'wal';
select 'schema.foreign_keys', (select foreign_keys from pragma_foreign_keys) = 1;
select 'schema.busy_timeout', (select timeout from pragma_busy_timeout) = 10000;
select 'schema.tables', (select count(*) from sqlite_schema where name in ('namespaces', 'images', 'settings', 'image_list', 'registry_identity')) = 5;
select 'schema.no_store_path', (select count(*) from pragma_table_info('images') where name = 'store_path') = 0;
select 'schema.identity', (select count(*) from registry_identity where length(id) = 32) = 1;
select 'djinn_version.1', djinn_version() = 'djinn 0.1.0 (schema ' || (select user_version from pragma_user_version) || ')';

select 'djinn_setting.null', djinn_setting(NULL) is null;
select 'djinn_setting.null2', djinn_setting(NULL, 'x') is null;
select 'djinn_setting.unset', djinn_setting('store') is null;
-- error: djinn_setting: unknown key 'nope'; known keys: store
select djinn_setting('nope');
-- error: djinn_setting: unknown key 'nope'; known keys: store
select djinn_setting('nope', 'x');
-- error: djinn_setting: store '../x': '..' is not allowed in the store path
select djinn_setting('store', '../x');
-- error: djinn_setting: store '/a/../b': '..' is not allowed
select djinn_setting('store', '/a/../b');
-- error: djinn_setting: store: the directory must be 1 to 4096 bytes long
select djinn_setting('store', '');
select 'djinn_setting.rejected_unset', djinn_setting('store') is null;

-- Default store beside the database; a relative setting is taken against
-- the database's directory, an absolute one as is.
select 'djinn_store.default', djinn_store() like '/%/images';
create temp table base as select substr(djinn_store(), 1, length(djinn_store()) - length('/images')) as dir;
select 'djinn_setting.set', djinn_setting('store', 'store2') = 'store2';
select 'djinn_setting.get', djinn_setting('store') = 'store2';
select 'djinn_store.relative', djinn_store() = (select dir from base) || '/store2';
select 'djinn_store.used', image_register(NULL, 'a', 'fixtures/plain.qcow2') > 0;
select 'djinn_store.used_path', image_path(NULL, 'a') = (select dir from base) || '/store2/' || image_sha256('fixtures/plain.qcow2') || '.qcow2';
-- Files are found by content under the store in effect, so the store
-- cannot move away from the registry's files (issue 10): refused, nothing
-- changed.
-- error: djinn_setting: store '
select djinn_setting('store', 'store3/');
select 'djinn_setting.refused_kept', djinn_setting('store') = 'store2';
-- error: of the 1 image files of this registry are not there (e.g. 
select djinn_setting('store', NULL);
select 'djinn_store.kept', image_path(NULL, 'a') = (select dir from base) || '/store2/' || image_sha256('fixtures/plain.qcow2') || '.qcow2';
select 'djinn_store.removed', image_remove(NULL, 'a') = 1;
-- An empty registry may point anywhere.
select 'djinn_setting.trailing', djinn_setting('store', 'store3/') = 'store3/';
select 'djinn_store.trailing', djinn_store() = (select dir from base) || '/store3';
select 'djinn_setting.absolute', djinn_setting('store', (select dir from base) || '/abs/nested/dir') like '/%';
select 'djinn_store.absolute', djinn_store() = (select dir from base) || '/abs/nested/dir';
select 'djinn_store.mkdir_p', image_register(NULL, 'b', 'fixtures/plain2.qcow2') > 0;
select 'djinn_store.mkdir_p_path', image_path(NULL, 'b') like (select dir from base) || '/abs/nested/dir/%.qcow2';
select 'djinn_store.b_valid', qcow2_validate(image_path(NULL, 'b')) = 1;
select 'djinn_store.a', image_register(NULL, 'a', 'fixtures/plain.qcow2') > 0;
select 'djinn_setting.store_kept', djinn_setting('store') like '/%/abs/nested/dir';

-- djinn_fsck
select 'djinn_fsck.ok', json_extract(djinn_fsck(), '$.ok') = 1;
select 'djinn_fsck.images', json_extract(djinn_fsck(), '$.images') = 2;
select 'djinn_fsck.files', json_extract(djinn_fsck(), '$.files') = 2;
select 'djinn_fsck.missing', json_array_length(djinn_fsck(), '$.missing') = 0;
select 'djinn_fsck.store', json_extract(djinn_fsck(), '$.store') = djinn_store();
select 'djinn_fsck.owner', json_extract(djinn_fsck(), '$.owner') = 'ours';
select 'djinn_fsck.registry', json_extract(djinn_fsck(), '$.registry') = (select id from registry_identity);
select 'djinn_store_check.ok', djinn_store_check() is null;
-- A row whose file is gone is reported, by the path its content gives.
insert into images(owner, author, name, sha256, file_size, virtual_size) values ('x', 'x', 'ghost', printf('%064d', 0), 0, 0);
select 'djinn_fsck.detects_missing', json_extract(djinn_fsck(), '$.missing[0]') = djinn_store() || '/' || printf('%064d', 0) || '.qcow2';
select 'djinn_fsck.not_ok', json_extract(djinn_fsck(), '$.ok') = 0;
-- repair never deletes a row, even one whose file is gone.
select 'djinn_fsck.repair_keeps_rows', json_extract(djinn_fsck('repair'), '$.images') = 3;
delete from images where name = 'ghost';
select 'djinn_fsck.repair_ok', json_extract(djinn_fsck('repair'), '$.ok') = 1;
select 'djinn_fsck.repair_removed', json_array_length(djinn_fsck('repair'), '$.removed') = 0;
select 'djinn_fsck.repair_restored', json_array_length(djinn_fsck('repair'), '$.restored') = 0;
select 'djinn_fsck.report_no_removed', json_type(djinn_fsck(), '$.removed') is null;
-- The store can move back only with its files: b and a live in abs/.
-- error: djinn_setting: store '
select djinn_setting('store', NULL);
select 'djinn_store.cleanup_a', image_remove(NULL, 'a') = 1;
select 'djinn_store.cleanup_b', image_remove(NULL, 'b') = 1;
select 'djinn_setting.reset', djinn_setting('store', NULL) is null;
select 'djinn_setting.reset_get', djinn_setting('store') is null;
select 'djinn_store.back', djinn_store() = (select dir from base) || '/images';
select 'djinn_setting.table', (select count(*) from settings) = 0;
-- error: djinn_fsck: unknown mode 'fix'; allowed: 'repair' (or no argument: report only)
select djinn_fsck('fix');

-- image_sha256
select 'image_sha256.null', image_sha256(NULL) is null;
select 'image_sha256.empty_blob', image_sha256(x'') = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
select 'image_sha256.abc', image_sha256(cast('abc' as blob)) = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
select 'image_sha256.empty_file', image_sha256('fixtures/empty.img') = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
select 'image_sha256.file_blob', image_sha256('fixtures/raw.img') = image_sha256(readfile('fixtures/raw.img'));
-- error: image_sha256: fixtures/no-such: cannot open: No such file or directory
select image_sha256('fixtures/no-such');
-- error: image_sha256: fixtures: not a regular file
select image_sha256('fixtures');

-- Schema rules hold for rows written by hand.
-- error: CHECK constraint failed
insert into images(owner, author, name, sha256, file_size, virtual_size) values ('x', 'x', 'bad/name', printf('%064d', 0), 0, 0);
-- error: CHECK constraint failed
insert into images(owner, author, name, driver, sha256, file_size, virtual_size) values ('x', 'x', 'n', 'ssh', printf('%064d', 0), 0, 0);
-- error: FOREIGN KEY constraint failed
insert into images(namespace_id, owner, author, name, sha256, file_size, virtual_size) values (999, 'x', 'x', 'n', printf('%064d', 0), 0, 0);
