-- namespace.sql: namespace_resolve and Djinn's path[@owner] rules.

select 'namespace_resolve.null', namespace_resolve(NULL) is null;
-- On-the-fly creation, ancestors first, each exactly once.
select 'namespace_resolve.root', namespace_resolve('a') = 1;
select 'namespace_resolve.again', namespace_resolve('a') = 1;
select 'namespace_resolve.deep', namespace_resolve('a/b/c') = 3;
select 'namespace_resolve.count', (select count(*) from namespaces) = 3;
select 'namespace_resolve.ancestor', namespace_resolve('a/b') = 2;
select 'namespace_resolve.no_duplicates', (select count(*) from namespaces) = 3;
select 'namespace_resolve.levels', (select group_concat(level, ',') from (select level from namespaces order by id)) = '0,1,2';
select 'namespace_resolve.paths', (select group_concat(path, ',') from (select path from namespaces order by id)) = 'a,a/b,a/b/c';
select 'namespace_resolve.names', (select group_concat(name, ',') from (select name from namespaces order by id)) = 'a,b,c';
select 'namespace_resolve.root_id', (select count(*) from namespaces where root_id = 1) = 3;
select 'namespace_resolve.parent', (select parent_id from namespaces where id = 3) = 2;
select 'namespace_resolve.root_parent', (select parent_id from namespaces where id = 1) is null;
select 'namespace_resolve.private', (select count(*) from namespaces where visibility = 'private') = 3;
select 'namespace_resolve.sibling', namespace_resolve('a/b/d') = 4;
select 'namespace_resolve.digits', namespace_resolve('Team9/CI2') > 0;

-- @owner: another owner's tree is separate.
select 'namespace_resolve.owner', namespace_resolve('a@bob') not in (1, 2, 3, 4);
select 'namespace_resolve.owner_name', (select owner from namespaces where id = namespace_resolve('a@bob')) = 'bob';
select 'namespace_resolve.owner_child', (select parent_id from namespaces where id = namespace_resolve('a/b@bob')) = namespace_resolve('a@bob');
select 'namespace_resolve.owner_unique', (select count(*) from namespaces where path = 'a') = 2;
select 'namespace_resolve.owner_chars', (select owner from namespaces where id = namespace_resolve('p@A.b_c-9')) = 'A.b_c-9';
select 'namespace_resolve.default_owner', (select owner from namespaces where id = 1) != 'bob';

-- Depth: 20 levels are allowed, 21 are not.
select 'namespace_resolve.depth20', namespace_resolve('d1/d2/d3/d4/d5/d6/d7/d8/d9/d10/d11/d12/d13/d14/d15/d16/d17/d18/d19/d20') > 0;
select 'namespace_resolve.depth20_levels', (select max(level) from namespaces where path like 'd1/%' or path = 'd1') = 19;
select 'namespace_resolve.depth20_rows', (select count(*) from namespaces where path like 'd1/%' or path = 'd1') = 20;
-- error: namespace_resolve: namespace 'd1/d2/d3/d4/d5/d6/d7/d8/d9/d10/d11/d12/d13/d14/d15/d16/d17/d18/d19/d20/d21': cannot exceed depth of 20
select namespace_resolve('d1/d2/d3/d4/d5/d6/d7/d8/d9/d10/d11/d12/d13/d14/d15/d16/d17/d18/d19/d20/d21');
select 'namespace_resolve.depth21_nothing', (select count(*) from namespaces where path like 'd1/%' or path = 'd1') = 20;

-- Bad paths: the error names the segment and what is allowed; nothing is created.
-- error: namespace_resolve: namespace: segment 2 'a-b' of 'x/a-b': a segment may contain only the letters A-Z, a-z and the digits 0-9
select namespace_resolve('x/a-b');
select 'namespace_resolve.bad_nothing', (select count(*) from namespaces where path = 'x') = 0;
-- error: namespace_resolve: namespace: segment 1 '..' of '../etc'
select namespace_resolve('../etc');
-- error: namespace_resolve: namespace: segment 2 '.' of 'a/.'
select namespace_resolve('a/.');
-- error: namespace_resolve: namespace: segment 1 'under_score' of 'under_score'
select namespace_resolve('under_score');
-- error: namespace_resolve: namespace '/a': a path may not start or end with '/'
select namespace_resolve('/a');
-- error: namespace_resolve: namespace 'a/': a path may not start or end with '/'
select namespace_resolve('a/');
-- error: namespace_resolve: namespace 'a//b': segment 2 is empty
select namespace_resolve('a//b');
-- error: namespace_resolve: empty namespace path
select namespace_resolve('');
-- error: namespace_resolve: namespace '@bob': the path before '@' is empty
select namespace_resolve('@bob');
-- error: namespace_resolve: namespace 'a@': owner '' may contain only the letters A-Z, a-z, the digits 0-9, '_', '.' and '-'
select namespace_resolve('a@');
-- error: namespace_resolve: namespace 'a@b c': owner 'b c' may contain only
select namespace_resolve('a@b c');
-- error: namespace_resolve: namespace 'a@..': owner '..' may contain only
select namespace_resolve('a@..');
-- error: namespace_resolve: namespace 'a@b@c': owner 'b@c' may contain only
select namespace_resolve('a@b@c');
select 'namespace_resolve.bad_none', (select count(*) from namespaces where owner in ('', 'b c', '..', 'b@c')) = 0;

-- Visibility: children inherit their root's; a root change cascades.
update namespaces set visibility = 'public' where id = 1;
select 'visibility.cascade', (select count(*) from namespaces where root_id = 1 and visibility = 'public') = 4;
select 'visibility.inherit', (select visibility from namespaces where id = namespace_resolve('a/b/new')) = 'public';
select 'visibility.inherit_deep', (select visibility from namespaces where id = namespace_resolve('a/x/y/z')) = 'public';
select 'visibility.other_owner', (select visibility from namespaces where id = namespace_resolve('a/z@bob')) = 'private';
-- error: a child namespace has the visibility of its root namespace
update namespaces set visibility = 'internal' where id = 2;
-- error: CHECK constraint failed
update namespaces set visibility = 'secret' where id = 1;
select 'visibility.unchanged', (select visibility from namespaces where id = 2) = 'public';

-- Deleting a namespace deletes its subtree (no orphaned grandchildren).
delete from namespaces where id = 2;
select 'namespace.delete_subtree', (select count(*) from namespaces where path like 'a/b/%' and root_id = 1) = 0;
select 'namespace.delete_keeps_root', (select count(*) from namespaces where id = 1) = 1;

-- Inside a transaction, namespace_resolve rolls back with it.
begin;
select 'namespace_resolve.in_txn', namespace_resolve('txn/inner') > 0;
rollback;
select 'namespace_resolve.rolled_back', (select count(*) from namespaces where path like 'txn%') = 0;
begin;
select 'namespace_resolve.in_txn2', namespace_resolve('txn/kept') > 0;
commit;
select 'namespace_resolve.committed', (select count(*) from namespaces where path like 'txn%') = 2;

-- Inside a statement that writes: part of that statement.
create table ids(id);
insert into ids select namespace_resolve('w/x');
select 'namespace_resolve.in_insert', (select id from ids) = (select id from namespaces where path = 'w/x');

-- DIRECTONLY: not from triggers.
create table t(x);
create trigger t_ns after insert on t begin select namespace_resolve('trig'); end;
-- error: unsafe use of namespace_resolve()
insert into t values (1);
