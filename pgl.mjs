import { PGlite } from '@electric-sql/pglite';
import { vector } from '@electric-sql/pglite/vector';

let t = Date.now();
const db = await PGlite.create({ extensions: { vector } });
console.log('init', Date.now() - t);
await db.exec('create extension if not exists vector; create table t(a int); insert into t values (1)');
t = Date.now();
const dump = await db.dumpDataDir('none');
console.log('dump', Date.now() - t, dump.size);
t = Date.now();
const db2 = await PGlite.create({ loadDataDir: dump, extensions: { vector } });
console.log('load', Date.now() - t, (await db2.query('select * from t')).rows);
const r = await db2.query('select current_user, version()');
console.log(r.rows);
