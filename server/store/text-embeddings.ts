/**
 * CLIP text embeddings persisted in SQLite, behind the engine's in-memory LRU (the engine's
 * `TextEmbeddingStore` interface; engine/onnx/text-cache.ts). The game scores every drawing
 * against the same prompts and the caption ranker re-ranks the same candidates, so after a
 * restart most texts are already here.
 *
 * Its own file (`<dataDir>/text-embeddings.db`), not a table in studio.db: it is a cache that
 * may be deleted at any time, and its writes (one per new text) stay off the gallery's WAL.
 * Opened the way db.ts opens studio.db: WAL, synchronous NORMAL, the schema versioned in
 * `PRAGMA user_version`.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { TextEmbeddingStore } from '../../engine/index';
import type { Db } from './db';

const SCHEMA_VERSION = 1;

function openTextEmbeddingDb(path: string): Db {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > SCHEMA_VERSION) {
    db.close();
    throw new Error(`${path} is at schema version ${version}, newer than this studio knows (${SCHEMA_VERSION}); delete it (it is only a cache) or upgrade the studio.`);
  }
  if (version < SCHEMA_VERSION) {
    db.transaction(() => {
      db.exec(`CREATE TABLE IF NOT EXISTS text_embeddings (
        model TEXT NOT NULL, tokens TEXT NOT NULL, embedding BLOB NOT NULL, used INTEGER NOT NULL,
        PRIMARY KEY (model, tokens)) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS text_embeddings_used ON text_embeddings (used);`);
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
    })();
  }
  return db;
}

/**
 * Text embeddings in a SQLite file, keyed by model and tokens, at most `capacity` rows (the
 * least recently used go first).
 *
 * @example
 * const store = new SqliteTextStore(join(config.dataDir, 'text-embeddings.db'));
 * const scorer = await ClipScorer.open({ dataDir: config.dataDir, textStore: store }); // closes the store on close()
 */
export class SqliteTextStore implements TextEmbeddingStore {
  private readonly db: Db;
  private readonly select: Database.Statement<[string, string], { embedding: Buffer }>;
  private readonly touch: Database.Statement<[number, string, string]>;
  private readonly insert: Database.Statement<[string, string, Buffer, number]>;
  private readonly prune: Database.Statement<[number]>;
  private clock: number;
  private sincePrune = 0;

  constructor(readonly path: string, readonly capacity = 100_000) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`The text store's capacity must be an integer of 1 or more, got ${capacity}`);
    this.db = openTextEmbeddingDb(path);
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
    if (!this.db.open) return;
    this.prune.run(this.capacity);
    this.db.close();
  }
}
