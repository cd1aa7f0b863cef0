-- image.sql: image_register, image_path, image_remove and the store.
-- The runner opens a fresh reg.db; the store is images/ beside it.

select 'image_register.1', image_register('team/ci', 'debian', 'fixtures/plain.qcow2') = 1;
select 'image_register.2', image_register('team/ci', 'debian2', 'fixtures/plain.qcow2') = 2;
select 'image_register.3', image_register(NULL, 'debian', 'fixtures/plain2.qcow2') = 3;
select 'image_register.4', image_register('', 'small', 'fixtures/small-data.qcow2') = 4;
select 'image_register.rows', (select count(*) from images) = 4;
select 'image_register.namespace', (select namespace_id from images where id = 1) = (select id from namespaces where path = 'team/ci');
select 'image_register.ancestors', (select count(*) from namespaces) = 2;
select 'image_register.personal', (select count(*) from images where namespace_id is null) = 2;
select 'image_register.owner', (select count(distinct owner) from images) = 1;
select 'image_register.author', (select count(*) from images where author = owner) = 4;
select 'image_register.driver', (select count(*) from images where driver = 'qemu') = 4;
select 'image_register.sha256', (select sha256 from images where id = 1) = image_sha256('fixtures/plain.qcow2');
select 'image_register.file_size', (select file_size from images where id = 1) = length(readfile('fixtures/plain.qcow2'));
select 'image_register.virtual_size', (select virtual_size from images where id = 1) = 1073741824;
select 'image_register.virtual_size2', (select virtual_size from images where id = 3) = 2147483648;
select 'image_register.path', image_path('team/ci', 'debian') = djinn_store() || '/' || image_sha256('fixtures/plain.qcow2') || '.qcow2';
select 'image_register.store_default', djinn_store() like '%/images';
select 'image_register.null_name', image_register('team/ci', NULL, 'fixtures/plain.qcow2') is null;
select 'image_register.null_path', image_register('team/ci', 'x', NULL) is null;

-- Identical content shares one file; the copy is the source's bytes.
select 'image_register.shared', image_path('team/ci', 'debian') = image_path('team/ci', 'debian2');
select 'image_register.distinct', image_path('team/ci', 'debian') != image_path(NULL, 'debian');
select 'image_register.files', json_extract(djinn_fsck(), '$.files') = 3;
select 'image_register.copy_valid', qcow2_validate(image_path('team/ci', 'debian')) = 1;
select 'image_register.copy_same', image_sha256(image_path('', 'small')) = image_sha256('fixtures/small-data.qcow2');
select 'image_register.fsck', json_extract(djinn_fsck(), '$.ok') = 1;

-- Duplicates and bad input: clear errors, nothing left behind.
-- error: image_register: image 'debian' already exists in namespace 'team/ci'
select image_register('team/ci', 'debian', 'fixtures/plain2.qcow2');
-- error: image_register: image 'debian' already exists among the personal images of
select image_register(NULL, 'debian', 'fixtures/plain.qcow2');
-- error: image_register: fixtures/no-such.qcow2: cannot open: No such file or directory
select image_register('team/ci', 'nope', 'fixtures/no-such.qcow2');
-- error: image_register: fixtures: not a regular file
select image_register('team/ci', 'dir', 'fixtures');
-- error: image_register: fixtures/v2.qcow2: rejected, not an acceptable QCOW2 v3 image: 
select image_register('newns', 'v2', 'fixtures/v2.qcow2');
-- error: image_register: fixtures/backing.qcow2: rejected, not an acceptable QCOW2 v3 image: 
select image_register('newns', 'backing', 'fixtures/backing.qcow2');
-- error: image_register: fixtures/datafile.qcow2: rejected
select image_register('newns', 'datafile', 'fixtures/datafile.qcow2');
-- error: image_register: fixtures/dirty.qcow2: rejected
select image_register('newns', 'dirty', 'fixtures/dirty.qcow2');
-- error: image_register: fixtures/raw.img: rejected
select image_register('newns', 'raw', 'fixtures/raw.img');
-- error: image_register: fixtures/empty.img: rejected
select image_register('newns', 'empty', 'fixtures/empty.img');
-- error: image_register: fixtures/garbage.img: rejected
select image_register(NULL, 'garbage', 'fixtures/garbage.img');
select 'image_register.rejected_rows', (select count(*) from images) = 4;
select 'image_register.rejected_namespace', (select count(*) from namespaces where path = 'newns') = 0;
select 'image_register.rejected_files', json_extract(djinn_fsck(), '$.files') = 3;
select 'image_register.rejected_fsck', json_extract(djinn_fsck(), '$.ok') = 1;
-- error: image_register: image name 'a/b': a name may contain only the letters A-Z, a-z, the digits 0-9, '_' and '-'
select image_register('team/ci', 'a/b', 'fixtures/plain.qcow2');
-- error: image_register: image name '..': a name may contain only
select image_register('team/ci', '..', 'fixtures/plain.qcow2');
-- error: image_register: image name '/etc/passwd': a name may contain only
select image_register(NULL, '/etc/passwd', 'fixtures/plain.qcow2');
-- error: image_register: image name '': a name may contain only
select image_register('team/ci', '', 'fixtures/plain.qcow2');
-- error: image_register: namespace: segment 2 '..' of 'team/../x'
select image_register('team/../x', 'n', 'fixtures/plain.qcow2');
select 'image_register.name_chars', image_register('team/ci', 'Deb_12-x', 'fixtures/plain.qcow2') > 0;

-- @owner: the image belongs to the namespace's owner.
select 'image_register.at_owner', image_register('ci@alice', 'deb', 'fixtures/plain.qcow2') > 0;
select 'image_register.at_owner_row', (select owner from images where name = 'deb') = 'alice';
select 'image_register.at_owner_ns', (select owner from namespaces where id = (select namespace_id from images where name = 'deb')) = 'alice';
select 'image_path.at_owner', image_path('ci@alice', 'deb') = image_path('team/ci', 'debian');
select 'image_path.not_mine', image_path('ci', 'deb') is null;

-- image_path
select 'image_path.null', image_path('team/ci', NULL) is null;
select 'image_path.absent', image_path('team/ci', 'nope') is null;
select 'image_path.absent_ns', image_path('no/such', 'debian') is null;
select 'image_path.creates_nothing', (select count(*) from namespaces where path in ('no', 'no/such')) = 0;
select 'image_path.absolute', substr(image_path('team/ci', 'debian'), 1, 1) = '/';
select 'image_path.personal', image_path(NULL, 'debian') = image_path('', 'debian');
-- error: image_path: image name 'a b': a name may contain only
select image_path('team/ci', 'a b');
-- error: image_path: namespace: segment 1 'no-such' of 'no-such'
select image_path('no-such', 'x');

-- image_remove: the file goes only with its last reference.
create temp table saved as select image_path('team/ci', 'debian') as p;
select 'image_remove.1', image_remove('team/ci', 'debian') = 1;
select 'image_remove.row', image_path('team/ci', 'debian') is null;
select 'image_remove.shared_kept', qcow2_validate((select p from saved)) = 1;
select 'image_remove.again', image_remove('team/ci', 'debian') = 0;
select 'image_remove.2', image_remove('team/ci', 'debian2') = 1;
select 'image_remove.3', image_remove('team/ci', 'Deb_12-x') = 1;
select 'image_remove.still_shared', qcow2_validate((select p from saved)) = 1;
select 'image_remove.4', image_remove('ci@alice', 'deb') = 1;
select 'image_remove.file_gone', qcow2_validate((select p from saved)) = 0;
select 'image_remove.files', json_extract(djinn_fsck(), '$.files') = 2;
select 'image_remove.fsck', json_extract(djinn_fsck(), '$.ok') = 1;
select 'image_remove.null', image_remove('team/ci', NULL) is null;
select 'image_remove.absent_ns', image_remove('nosuch', 'x') = 0;
select 'image_remove.creates_nothing', (select count(*) from namespaces where path = 'nosuch') = 0;
select 'image_remove.ns_kept', (select count(*) from namespaces where path = 'team/ci') = 1;
-- error: image_remove: image name '../x': a name may contain only
select image_remove('team/ci', '../x');
select 'image_remove.personal', image_remove(NULL, 'debian') = 1;
select 'image_remove.personal_gone', image_path(NULL, 'debian') is null;

-- The same content again after its file was removed.
select 'image_register.again', image_register('team/ci', 'debian', 'fixtures/plain.qcow2') > 0;
select 'image_register.again_valid', qcow2_validate(image_path('team/ci', 'debian')) = 1;
select 'image_register.again_path', image_path('team/ci', 'debian') = (select p from saved);

-- From a SELECT that reads a table (the outer statement holds a read
-- transaction): works when nobody else writes meanwhile.
create table todo(ns, name, path);
insert into todo values ('batch', 'b1', 'fixtures/plain.qcow2'), ('batch', 'b2', 'fixtures/plain2.qcow2'), ('batch', 'b3', 'fixtures/plain.qcow2');
select 'image_register.from_table', count(*) = 3 from (select image_register(ns, name, path) as id from todo) where id > 0;
select 'image_register.from_table_rows', (select count(*) from image_list where namespace = 'batch') = 3;
select 'image_remove.from_view', sum(r) = 3 from (select image_remove(namespace, name) as r from image_list where namespace = 'batch');
select 'image_remove.from_view_rows', (select count(*) from image_list where namespace = 'batch') = 0;

-- image_list for humans.
select 'image_list.count', (select count(*) from image_list) = (select count(*) from images);
select 'image_list.namespace', (select namespace from image_list where name = 'debian') = 'team/ci';
select 'image_list.personal', (select count(*) from image_list where namespace is null) = 1;
select 'image_list.visibility', (select visibility from image_list where name = 'debian') = 'private';

-- Inside a transaction a file copy could not be rolled back: refused.
begin;
-- error: image_register: cannot run inside an open transaction (BEGIN ... COMMIT)
select image_register('t', 'x', 'fixtures/plain.qcow2');
-- error: image_remove: cannot run inside an open transaction
select image_remove('team/ci', 'debian');
rollback;
select 'image_register.txn_nothing', (select count(*) from namespaces where path = 't') = 0;
-- Inside a statement that writes: refused too.
create table out(id);
-- error: image_register: cannot run inside a statement that writes the registry
insert into out select image_register('t', 'w', 'fixtures/plain.qcow2');
-- error: image_remove: cannot run inside a statement that writes the registry
insert into out select image_remove('team/ci', 'debian');
select 'image_register.writer_nothing', (select count(*) from images where name = 'w') = 0;
select 'image_remove.writer_kept', image_path('team/ci', 'debian') is not null;

-- DIRECTONLY: not from views or triggers.
create view reg_view as select image_register(NULL, 'v', 'fixtures/plain.qcow2') as id;
-- error: unsafe use of image_register()
select * from reg_view;
create trigger out_rm after insert on out begin select image_remove('team/ci', 'debian'); end;
-- error: unsafe use of image_remove()
insert into out values (1);

-- A NUL byte inside a TEXT argument: refused, never cut short (issue 10:
-- 'team/ci<NUL>x' was registered as 'team/ci', a path as its prefix).
-- error: image_register: the namespace has a NUL byte at offset 7 of its 9 bytes; NUL is not allowed in a namespace
select image_register('team/ci' || char(0) || 'x', 'nul', 'fixtures/plain.qcow2');
-- error: image_register: the image name has a NUL byte at offset 1
select image_register('team/ci', 'n' || char(0) || 'x', 'fixtures/plain.qcow2');
-- error: image_register: the path has a NUL byte at offset 20
select image_register('team/ci', 'nul', 'fixtures/plain.qcow2' || char(0) || '.evil');
select 'nul.nothing', (select count(*) from images where name in ('nul', 'n')) = 0;
-- error: image_path: the image name has a NUL byte
select image_path('team/ci', 'debian' || char(0) || 'x');
-- error: image_path: the namespace has a NUL byte
select image_path('team/ci' || char(0), 'debian');
-- error: image_remove: the image name has a NUL byte
select image_remove('team/ci', 'debian' || char(0) || 'x');
select 'nul.remove_kept', image_path('team/ci', 'debian') is not null;
-- error: namespace_resolve: the namespace has a NUL byte
select namespace_resolve('a' || char(0) || 'b');
select 'nul.no_namespace', (select count(*) from namespaces where path = 'a') = 0;
-- error: djinn_setting: the value has a NUL byte
select djinn_setting('store', '/tmp' || char(0) || 'x');
-- error: djinn_setting: the key has a NUL byte
select djinn_setting('store' || char(0) || 'x');
-- error: qcow2_check: the path has a NUL byte
select qcow2_check('fixtures/plain.qcow2' || char(0) || 'x');
-- error: qcow2_validate: the path has a NUL byte
select qcow2_validate('fixtures/plain.qcow2' || char(0));
-- error: image_sha256: the path has a NUL byte
select image_sha256('fixtures/plain.qcow2' || char(0));
-- error: djinn_fsck: the mode has a NUL byte
select djinn_fsck('repair' || char(0) || 'x');
