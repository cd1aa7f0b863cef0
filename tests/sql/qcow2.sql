-- qcow2.sql: qcow2_validate, qcow2_check, qcow2_info over files (TEXT) and
-- bytes (BLOB). Fixtures come from tests/fixtures.sh (real qemu-img).

-- qcow2_validate: NULL, happy, every refused kind, never raises on images.
select 'qcow2_validate.null', qcow2_validate(NULL) is null;
select 'qcow2_validate.plain', qcow2_validate('fixtures/plain.qcow2') = 1;
select 'qcow2_validate.plain2', qcow2_validate('fixtures/plain2.qcow2') = 1;
select 'qcow2_validate.small_data', qcow2_validate('fixtures/small-data.qcow2') = 1;
select 'qcow2_validate.v2', qcow2_validate('fixtures/v2.qcow2') = 0;
select 'qcow2_validate.backing', qcow2_validate('fixtures/backing.qcow2') = 0;
select 'qcow2_validate.datafile', qcow2_validate('fixtures/datafile.qcow2') = 0;
select 'qcow2_validate.dirty', qcow2_validate('fixtures/dirty.qcow2') = 0;
select 'qcow2_validate.raw', qcow2_validate('fixtures/raw.img') = 0;
select 'qcow2_validate.empty', qcow2_validate('fixtures/empty.img') = 0;
select 'qcow2_validate.garbage', qcow2_validate('fixtures/garbage.img') = 0;
select 'qcow2_validate.missing', qcow2_validate('fixtures/no-such.qcow2') = 0;
select 'qcow2_validate.directory', qcow2_validate('fixtures') = 0;
select 'qcow2_validate.blob', qcow2_validate(readfile('fixtures/plain.qcow2')) = 1;
select 'qcow2_validate.blob_v2', qcow2_validate(readfile('fixtures/v2.qcow2')) = 0;
select 'qcow2_validate.blob_magic_only', qcow2_validate(x'514649fb') = 0;
select 'qcow2_validate.blob_empty', qcow2_validate(x'') = 0;
select 'qcow2_validate.text_empty', qcow2_validate('') = 0;
-- error: qcow2_validate: expected a BLOB (image bytes) or TEXT (file path), got INTEGER
select qcow2_validate(42);

-- qcow2_check: JSON listing every problem.
select 'qcow2_check.null', qcow2_check(NULL) is null;
select 'qcow2_check.valid', json_extract(qcow2_check('fixtures/plain.qcow2'), '$.valid') = 1;
select 'qcow2_check.no_errors', json_array_length(qcow2_check('fixtures/plain.qcow2'), '$.errors') = 0;
select 'qcow2_check.invalid', json_extract(qcow2_check('fixtures/v2.qcow2'), '$.valid') = 0;
select 'qcow2_check.v2', json_extract(qcow2_check('fixtures/v2.qcow2'), '$.errors[0].code') = 'version';
select 'qcow2_check.backing', exists (select 1 from json_each(qcow2_check('fixtures/backing.qcow2'), '$.errors') where json_extract(value, '$.code') = 'backing_file');
select 'qcow2_check.datafile', exists (select 1 from json_each(qcow2_check('fixtures/datafile.qcow2'), '$.errors') where json_extract(value, '$.code') = 'data_file');
select 'qcow2_check.dirty', exists (select 1 from json_each(qcow2_check('fixtures/dirty.qcow2'), '$.errors') where json_extract(value, '$.code') = 'dirty');
select 'qcow2_check.raw', json_extract(qcow2_check('fixtures/raw.img'), '$.errors[0].code') = 'not_qcow2';
select 'qcow2_check.missing', json_extract(qcow2_check('fixtures/no-such.qcow2'), '$.errors[0].code') = 'io';
select 'qcow2_check.messages', json_extract(qcow2_check('fixtures/v2.qcow2'), '$.errors[0].message') like '%version%';
select 'qcow2_check.blob', exists (select 1 from json_each(qcow2_check(readfile('fixtures/dirty.qcow2')), '$.errors') where json_extract(value, '$.code') = 'dirty');
select 'qcow2_check.json_valid', json_valid(qcow2_check('fixtures/garbage.img'));
-- error: qcow2_check: expected a BLOB (image bytes) or TEXT (file path), got REAL
select qcow2_check(1.5);

-- qcow2_info: what the header says; raises when not QCOW2 at all.
select 'qcow2_info.null', qcow2_info(NULL) is null;
select 'qcow2_info.1', json_extract(qcow2_info('fixtures/plain.qcow2'), '$.virtual_size') = 1073741824;
select 'qcow2_info.2', json_extract(qcow2_info('fixtures/plain.qcow2'), '$.version') = 3;
select 'qcow2_info.3', json_extract(qcow2_info('fixtures/plain2.qcow2'), '$.virtual_size') = 2147483648;
select 'qcow2_info.4', json_extract(qcow2_info('fixtures/plain.qcow2'), '$.cluster_size') = 65536;
select 'qcow2_info.5', json_extract(qcow2_info('fixtures/small-data.qcow2'), '$.allocated_clusters') > 0;
select 'qcow2_info.6', json_extract(qcow2_info('fixtures/plain.qcow2'), '$.allocated_clusters') = 0;
select 'qcow2_info.v2', json_extract(qcow2_info('fixtures/v2.qcow2'), '$.version') = 2;
select 'qcow2_info.file_size', json_extract(qcow2_info('fixtures/plain.qcow2'), '$.file_size') = length(readfile('fixtures/plain.qcow2'));
select 'qcow2_info.blob', json_extract(qcow2_info(readfile('fixtures/plain.qcow2')), '$.virtual_size') = 1073741824;
-- error: qcow2_info: fixtures/raw.img: not a qcow2 image (
select qcow2_info('fixtures/raw.img');
-- error: qcow2_info: fixtures/empty.img: not a qcow2 image (
select qcow2_info('fixtures/empty.img');
-- error: qcow2_info: fixtures/no-such.qcow2: not a qcow2 image (
select qcow2_info('fixtures/no-such.qcow2');
-- error: qcow2_info: BLOB of 3 bytes: not a qcow2 image (
select qcow2_info(x'010203');
-- error: qcow2_info: expected a BLOB (image bytes) or TEXT (file path), got INTEGER
select qcow2_info(7);

-- The functions read files, so they are DIRECTONLY: not from views or
-- triggers, where a database from someone else could run them.
create view probe as select qcow2_validate('fixtures/plain.qcow2') as v;
-- error: unsafe use of qcow2_validate()
select * from probe;
create table t(x);
create trigger t_probe after insert on t begin select qcow2_info('/etc/passwd'); end;
-- error: unsafe use of qcow2_info()
insert into t values (1);
