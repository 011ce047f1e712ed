import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase, migrate } from '../../server/store/db';
import { Gallery } from '../../server/store/gallery';

const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]);

describe('gallery store', () => {
  it('keeps items and files across a restart, newest first, and deleting removes the files', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'clip-studio-gallery-'));
    try {
      let db = openDatabase(dir);
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
      let g = new Gallery(db, dir);
      const a = await g.add({ prompt: 'first', seed: 1, width: 32, height: 32, png, animation: png, recipe: { steps: 3, prompt: 'first' } });
      await new Promise((r) => setTimeout(r, 5));
      const b = await g.add({ prompt: 'second', seed: 2, width: 32, height: 32, png, recipe: { steps: 4 } });
      db.close();

      db = openDatabase(dir); // a restart
      const version = db.pragma('user_version', { simple: true }) as number;
      assert.ok(version >= 1, 'the restart found the migrated schema');
      assert.equal(migrate(db), version, 'migrating again changes nothing');
      assert.equal(db.pragma('user_version', { simple: true }), version);
      g = new Gallery(db, dir);
      assert.deepEqual(g.list().map((r) => r.prompt), ['second', 'first']);
      assert.deepEqual(g.get(a.id)?.recipe, { steps: 3, prompt: 'first' });
      assert.equal(g.get(b.id)?.animationFile, null);
      const files = [g.filePath(a.id, 'png')!, g.filePath(a.id, 'webp')!];
      for (const f of files) assert.ok(existsSync(f));
      assert.equal(g.filePath('../../etc/passwd', 'png'), undefined);
      assert.equal(await g.delete(a.id), true);
      for (const f of files) assert.ok(!existsSync(f), `${f} removed`);
      assert.equal(await g.delete(a.id), false);
      assert.equal(g.count(), 1);
      db.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
