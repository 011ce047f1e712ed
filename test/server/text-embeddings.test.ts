/**
 * The server's SQLite text-embedding store: what the scorer encodes once is served from disk
 * after a restart (a new store on the same file) with no run of the text tower, per model;
 * the least recently used rows go first when the store is full.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../server/config';
import { ScoringService } from '../../server/scoring';
import { SqliteTextStore } from '../../server/store/text-embeddings';

const DEMO = new URL('../../models/demo-clip', import.meta.url).pathname;

test('after a restart the scorer serves a text embedding from SQLite without running the text tower', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'clip-studio-text-store-'));
  const config = loadConfig({ CLIP_STUDIO_DATA: dataDir });
  const texts = ['a red circle', 'a blue star on a green background'];
  try {
    const first = new ScoringService(config, { model: DEMO });
    const a = await (await first.get()).textEmbeddings(texts);
    const before = (await first.get()).stats;
    assert.equal(before.textRows, 2, 'the first service encodes both texts');
    await first.close();

    const store = new SqliteTextStore(join(dataDir, 'text-embeddings.db'));
    assert.equal(store.count(), 2, 'both embeddings were written to disk');
    store.close();

    const second = new ScoringService(config, { model: DEMO });
    const scorer = await second.get();
    const b = await scorer.textEmbeddings(texts);
    assert.equal(scorer.stats.textRuns, 0, 'the text tower ran after the restart');
    assert.equal(scorer.stats.textCacheHits, 2);
    assert.deepEqual(b.embeds, a.embeds);
    // A text never seen still runs the tower, and is then on disk too.
    await scorer.textEmbeddings(['a yellow triangle']);
    assert.equal(scorer.stats.textRuns, 1);
    await second.close();
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('entries are per model, survive reopening, and the least recently used go first', () => {
  const dir = mkdtempSync(join(tmpdir(), 'clip-studio-text-store-'));
  const path = join(dir, 'text.db');
  try {
    const e = (v: number) => Float32Array.of(v, v + 0.5, -v);
    let s = new SqliteTextStore(path, 2);
    s.put('m1', '49406 320 49407', e(1));
    s.put('m2', '49406 320 49407', e(2));
    assert.deepEqual(s.get('m1', '49406 320 49407'), e(1));
    assert.deepEqual(s.get('m2', '49406 320 49407'), e(2));
    assert.equal(s.get('m1', '49406 999 49407'), undefined);
    s.get('m1', '49406 320 49407'); // m1 is now the most recent
    s.put('m1', '49406 321 49407', e(3));
    s.close(); // prunes to capacity
    s = new SqliteTextStore(path, 2);
    assert.equal(s.count(), 2);
    assert.equal(s.get('m2', '49406 320 49407'), undefined, 'the least recently used entry should have gone');
    assert.deepEqual(s.get('m1', '49406 320 49407'), e(1));
    assert.deepEqual(s.get('m1', '49406 321 49407'), e(3));
    s.close();
    assert.throws(() => new SqliteTextStore(path, 0), /capacity/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
