-- foreign.sql: a database that is not a djinn registry (or one newer than
-- this extension) keeps the qcow2 functions but refuses registry ones.

pragma application_id = 42;
-- error: image_register: this database is not a djinn registry (application_id 0x0000002a
select image_register(NULL, 'x', 'fixtures/plain.qcow2');
-- error: image_path: this database is not a djinn registry
select image_path(NULL, 'x');
-- error: image_remove: this database is not a djinn registry
select image_remove(NULL, 'x');
-- error: namespace_resolve: this database is not a djinn registry
select namespace_resolve('a');
-- error: djinn_setting: this database is not a djinn registry
select djinn_setting('store');
-- error: djinn_store: this database is not a djinn registry
select djinn_store();
-- error: djinn_fsck: this database is not a djinn registry
select djinn_fsck();
select 'foreign.qcow2_validate', qcow2_validate('fixtures/plain.qcow2') = 1;
select 'foreign.qcow2_info', json_extract(qcow2_info('fixtures/plain.qcow2'), '$.version') = 3;
select 'foreign.version', djinn_version() like 'djinn %';
select 'foreign.sha256', length(image_sha256('fixtures/plain.qcow2')) = 64;

-- Newer schema than we know.
pragma application_id = 1147825774;
pragma user_version = 9999;
-- error: image_register: the registry has schema version 9999, newer than this extension knows
select image_register(NULL, 'x', 'fixtures/plain.qcow2');
-- error: image_path: the registry has schema version 9999, newer
select image_path(NULL, 'x');
select 'foreign.newer_nothing', (select count(*) from images) = 0;
pragma application_id = 42;
