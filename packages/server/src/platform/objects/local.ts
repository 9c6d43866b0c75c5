import { randomUUID } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { copyFile, mkdir, open, readdir, readFile, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import {
  assertKey,
  assertPrefix,
  DEFAULT_CONTENT_TYPE,
  type ObjectBody,
  type ObjectEntry,
  type ObjectHead,
  type ObjectStore,
  type PutOptions,
} from './store.js';

/** Folders of the store's directory that hold no objects: unfinished writes, and each object's content type. */
const TEMP = '.tmp';
const META = '.meta';
const RESERVED = new Set([TEMP, META]);

const missing = (err: unknown) => ['ENOENT', 'ENOTDIR', 'EISDIR'].includes((err as { code?: string }).code ?? '');

/** Removes `dir` and its parents up to (not including) `base` while they are empty. */
async function prune(dir: string, base: string): Promise<void> {
  for (let at = dir; at.startsWith(base + sep); at = dirname(at)) {
    try {
      await rmdir(at);
    } catch {
      return;
    }
  }
}

/** Byte order of UTF-8, which is the order S3 lists keys in. */
const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

/**
 * Objects as files in a directory: key `a/b/c` is the file `<dir>/a/b/c`. A write goes to a temporary file
 * in `<dir>/.tmp`, is flushed to disk and renamed into place, so a reader sees the old object or the new
 * one, never part of one. Keys are checked (keyProblem) and the path is checked again to lie inside the
 * directory, so no key reaches outside it. Unlike S3, a key cannot be both an object and the folder of
 * others (`a` and `a/b`); the keys Strata writes never are.
 */
export class LocalObjectStore implements ObjectStore {
  readonly root: string;
  readonly description: string;

  constructor(dir: string) {
    this.root = resolve(dir);
    this.description = `file:${this.root}`;
  }

  /** Creates the directory (and its temporary folder) if needed. */
  async open(): Promise<this> {
    await mkdir(join(this.root, TEMP), { recursive: true });
    return this;
  }

  #path(key: string, under = ''): string {
    assertKey(key);
    const segments = key.split('/');
    if (RESERVED.has(segments[0] as string)) throw new Error(`object keys may not start with "${segments[0]}/"`);
    const base = under ? join(this.root, under) : this.root;
    const path = join(base, ...segments);
    if (!path.startsWith(base + sep)) throw new Error(`object key ${JSON.stringify(key)} leaves the store`);
    return path;
  }

  async put(key: string, source: string | Buffer, options: PutOptions): Promise<void> {
    const target = this.#path(key);
    const metaPath = this.#path(key, META);
    const temp = join(this.root, TEMP, randomUUID());
    const tempMeta = `${temp}.meta`;
    try {
      await mkdir(join(this.root, TEMP), { recursive: true });
      if (typeof source === 'string') await copyFile(source, temp);
      else await writeFile(temp, source, { flag: 'wx', mode: 0o600 });
      const handle = await open(temp, 'r+');
      try {
        const { size } = await handle.stat();
        if (size !== options.size) throw new Error(`put ${key}: the source is ${size} bytes, not ${options.size}`);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await writeFile(tempMeta, JSON.stringify({ content_type: options.contentType ?? DEFAULT_CONTENT_TYPE }));
      await mkdir(dirname(metaPath), { recursive: true });
      await rename(tempMeta, metaPath);
      await mkdir(dirname(target), { recursive: true });
      await rename(temp, target);
    } finally {
      await rm(temp, { force: true });
      await rm(tempMeta, { force: true });
    }
  }

  async #contentType(key: string): Promise<string> {
    try {
      const meta = JSON.parse(await readFile(this.#path(key, META), 'utf8')) as { content_type?: string };
      return meta.content_type ?? DEFAULT_CONTENT_TYPE;
    } catch (err) {
      if (missing(err) || err instanceof SyntaxError) return DEFAULT_CONTENT_TYPE;
      throw err;
    }
  }

  async get(key: string): Promise<ObjectBody | null> {
    const path = this.#path(key);
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(path, 'r');
    } catch (err) {
      if (missing(err)) return null;
      throw err;
    }
    // The open handle keeps reading the object it opened, even if it is replaced or deleted meanwhile.
    try {
      const st = await handle.stat();
      if (!st.isFile()) {
        await handle.close();
        return null;
      }
      const contentType = await this.#contentType(key);
      return { body: handle.createReadStream(), size: st.size, contentType, lastModified: st.mtime };
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  async head(key: string): Promise<ObjectHead | null> {
    try {
      const st = await stat(this.#path(key));
      if (!st.isFile()) return null;
      return { size: st.size, contentType: await this.#contentType(key), lastModified: st.mtime };
    } catch (err) {
      if (missing(err)) return null;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    const path = this.#path(key);
    const metaPath = this.#path(key, META);
    try {
      const st = await stat(path);
      if (!st.isFile()) return;
      await rm(path, { force: true });
    } catch (err) {
      if (!missing(err)) throw err;
    }
    await rm(metaPath, { force: true });
    // Folders left empty go too, so a purged tenant leaves no trace; a concurrent put recreates what it needs.
    await prune(dirname(path), this.root);
    await prune(dirname(metaPath), join(this.root, META));
  }

  async *list(prefix: string): AsyncIterable<ObjectEntry> {
    assertPrefix(prefix);
    const at = prefix.lastIndexOf('/');
    const folder = at < 0 ? '' : prefix.slice(0, at);
    if (folder && RESERVED.has(folder.split('/')[0] as string)) return;
    yield* this.#walk(folder, prefix);
  }

  /** Depth first, children in byte order of their keys (a folder `a` sorts as `a/`): keys come out in S3's order. */
  async *#walk(folder: string, prefix: string): AsyncIterable<ObjectEntry> {
    const dir = folder ? join(this.root, ...folder.split('/')) : this.root;
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (missing(err)) return;
      throw err;
    }
    const children = entries
      .filter((e) => (e.isFile() || e.isDirectory()) && !(folder === '' && RESERVED.has(e.name)))
      .map((e) => ({ e, key: folder ? `${folder}/${e.name}` : e.name }))
      .sort((a, b) => byteOrder(a.e.isDirectory() ? `${a.key}/` : a.key, b.e.isDirectory() ? `${b.key}/` : b.key));
    for (const { e, key } of children) {
      if (e.isDirectory()) {
        const asFolder = `${key}/`;
        if (asFolder.startsWith(prefix) || prefix.startsWith(asFolder)) yield* this.#walk(key, prefix);
      } else if (key.startsWith(prefix)) {
        try {
          const st = await stat(join(dir, e.name));
          yield { key, size: st.size, lastModified: st.mtime };
        } catch (err) {
          if (!missing(err)) throw err; // deleted while listing
        }
      }
    }
  }

  async close(): Promise<void> {}
}
