/**
 * The gallery: generated images with their recipes. Rows live in SQLite (db.ts), image files
 * under `<dataDir>/gallery/` named by the row's id. Files are written (to a temporary name,
 * then renamed) before the row is inserted, so a listed item always has its files; deleting
 * removes the row, then the files.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Db } from './db';

/** Gallery ids are UUIDs; anything else (a path, `..`) is not an id. */
export const GALLERY_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface GalleryRecord {
  id: string;
  createdAt: string;
  prompt: string;
  seed: number;
  width: number;
  height: number;
  /** File names under the gallery directory. */
  imageFile: string;
  animationFile: string | null;
  recipe: Record<string, unknown>;
}

export interface NewGalleryItem {
  prompt: string;
  seed: number;
  width: number;
  height: number;
  png: Uint8Array;
  animation?: Uint8Array;
  recipe: Record<string, unknown>;
}

interface Row {
  id: string; created_at: string; prompt: string; seed: number; width: number; height: number;
  image_file: string; animation_file: string | null; recipe: string;
}

const fromRow = (r: Row): GalleryRecord => ({
  id: r.id, createdAt: r.created_at, prompt: r.prompt, seed: r.seed, width: r.width, height: r.height,
  imageFile: r.image_file, animationFile: r.animation_file, recipe: JSON.parse(r.recipe) as Record<string, unknown>,
});

export class Gallery {
  readonly dir: string;

  constructor(private readonly db: Db, dataDir: string) {
    this.dir = join(dataDir, 'gallery');
    mkdirSync(this.dir, { recursive: true });
  }

  /** Store an image (and its animation) with its recipe; returns the new record. */
  async add(item: NewGalleryItem): Promise<GalleryRecord> {
    const id = randomUUID();
    const imageFile = `${id}.png`;
    const animationFile = item.animation ? `${id}.webp` : null;
    await this.writeFile(imageFile, item.png);
    if (animationFile) await this.writeFile(animationFile, item.animation!);
    const rec: GalleryRecord = {
      id, createdAt: new Date().toISOString(), prompt: item.prompt, seed: item.seed, width: item.width, height: item.height,
      imageFile, animationFile, recipe: item.recipe,
    };
    this.db.prepare(`INSERT INTO gallery (id, created_at, prompt, seed, width, height, image_file, animation_file, recipe)
      VALUES (@id, @createdAt, @prompt, @seed, @width, @height, @imageFile, @animationFile, @recipe)`)
      .run({ ...rec, recipe: JSON.stringify(rec.recipe) });
    return rec;
  }

  /** Newest first. */
  list(opts: { limit?: number; offset?: number } = {}): GalleryRecord[] {
    const rows = this.db.prepare('SELECT * FROM gallery ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?')
      .all(opts.limit ?? 100, opts.offset ?? 0) as Row[];
    return rows.map(fromRow);
  }

  count(): number {
    return (this.db.prepare('SELECT count(*) AS n FROM gallery').get() as { n: number }).n;
  }

  get(id: string): GalleryRecord | undefined {
    if (!GALLERY_ID.test(id)) return undefined;
    const row = this.db.prepare('SELECT * FROM gallery WHERE id = ?').get(id) as Row | undefined;
    return row && fromRow(row);
  }

  /** The absolute path of one of an item's files, or undefined when the item or file is unknown. */
  filePath(id: string, kind: 'png' | 'webp'): string | undefined {
    const rec = this.get(id);
    const file = kind === 'png' ? rec?.imageFile : rec?.animationFile;
    return file ? join(this.dir, file) : undefined;
  }

  /** Remove the row and its files; false when there was no such item. */
  async delete(id: string): Promise<boolean> {
    const rec = this.get(id);
    if (!rec) return false;
    this.db.prepare('DELETE FROM gallery WHERE id = ?').run(id);
    await Promise.all([rec.imageFile, rec.animationFile].filter((f): f is string => !!f).map((f) => rm(join(this.dir, f), { force: true })));
    return true;
  }

  private async writeFile(name: string, data: Uint8Array): Promise<void> {
    const tmp = join(this.dir, `.${name}.tmp`);
    await writeFile(tmp, data);
    await rename(tmp, join(this.dir, name));
  }
}
