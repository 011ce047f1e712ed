/**
 * Text embeddings remembered across calls and restarts: an in-memory LRU in front of an
 * optional persistent store. The game scores every drawing against the same prompts and the
 * caption ranker re-ranks the same candidates, so most text encodes are repeats.
 *
 * `SqliteTextStore` persists to SQLite with better-sqlite3. It lives here only until
 * server/store exists (STYLE.md makes that the one importer of better-sqlite3): the embedder
 * takes any `TextEmbeddingStore`, so server/store can provide its own and this file's SQLite
 * class can go.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

/** Where text embeddings persist: model key + token key → embedding. */
export interface TextEmbeddingStore {
  get(model: string, key: string): Float32Array | undefined;
  put(model: string, key: string, embedding: Float32Array): void;
  close?(): void;
}

/** A size-bounded map that forgets the least recently used entry first. */
export class LruCache<V> {
  private readonly map = new Map<string, V>();
  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 0) throw new RangeError(`LRU capacity must be a non-negative integer, got ${capacity}`);
  }

  get size(): number {
    return this.map.size;
  }

  get(key: string): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key); // re-insert: a Map iterates in insertion order, oldest first
      this.map.set(key, v);
    }
    return v;
  }

  set(key: string, value: V): void {
    if (this.capacity === 0) return;
    this.map.delete(key);
    this.map.set(key, value);
    while (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value!);
  }
}

/**
 * Text embeddings in a SQLite table, at most `capacity` rows (least recently used go first).
 *
 * @example
 * const store = new SqliteTextStore('data/text-embeddings.sqlite');
 * const embedder = await OrtClipEmbedder.fromWeights({ config, tensors }, { textStore: store });
 */
export class SqliteTextStore implements TextEmbeddingStore {
  private readonly db: Database.Database;
  private readonly select: Database.Statement<[string, string], { embedding: Buffer }>;
  private readonly touch: Database.Statement<[number, string, string]>;
  private readonly insert: Database.Statement<[string, string, Buffer, number]>;
  private readonly prune: Database.Statement<[number]>;
  private clock: number;
  private sincePrune = 0;

  constructor(readonly path: string, readonly capacity = 100_000) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.exec(`CREATE TABLE IF NOT EXISTS text_embeddings (
      model TEXT NOT NULL, tokens TEXT NOT NULL, embedding BLOB NOT NULL, used INTEGER NOT NULL,
      PRIMARY KEY (model, tokens)) WITHOUT ROWID`);
    this.db.exec('CREATE INDEX IF NOT EXISTS text_embeddings_used ON text_embeddings (used)');
    this.select = this.db.prepare('SELECT embedding FROM text_embeddings WHERE model = ? AND tokens = ?');
    this.touch = this.db.prepare('UPDATE text_embeddings SET used = ? WHERE model = ? AND tokens = ?');
    this.insert = this.db.prepare('INSERT OR REPLACE INTO text_embeddings (model, tokens, embedding, used) VALUES (?, ?, ?, ?)');
    this.prune = this.db.prepare('DELETE FROM text_embeddings WHERE used <= (SELECT used FROM text_embeddings ORDER BY used DESC LIMIT 1 OFFSET ?)');
    // A use counter, not wall time: two uses in one millisecond still order.
    this.clock = (this.db.prepare('SELECT MAX(used) AS m FROM text_embeddings').get() as { m: number | null }).m ?? 0;
  }

  get(model: string, key: string): Float32Array | undefined {
    const row = this.select.get(model, key);
    if (!row) return undefined;
    this.touch.run(++this.clock, model, key);
    const b = row.embedding;
    return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  }

  put(model: string, key: string, embedding: Float32Array): void {
    this.insert.run(model, key, Buffer.from(embedding.buffer, embedding.byteOffset, embedding.byteLength), ++this.clock);
    if (++this.sincePrune >= 256) {
      this.sincePrune = 0;
      this.prune.run(this.capacity);
    }
  }

  /** Rows stored (for tests and the health report). */
  count(): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM text_embeddings').get() as { n: number }).n;
  }

  close(): void {
    this.prune.run(this.capacity);
    this.db.close();
  }
}
