/**
 * Text embeddings remembered across calls and restarts: an in-memory LRU in front of an
 * optional persistent store. The game scores every drawing against the same prompts and the
 * caption ranker re-ranks the same candidates, so most text encodes are repeats.
 *
 * The persistent store is an interface: the server's is SQLite (server/store/text-embeddings.ts,
 * server/store being better-sqlite3's only importer); the engine needs nothing but get and put.
 */

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
