/**
 * Uploaded images (image prompts, init images): decoded with the engine's guarded decoder
 * (format allow-list, pixel limit), re-encoded as PNG and kept under `<dataDir>/uploads/<uuid>.png`.
 * Jobs refer to them by id, so a client never names a path.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeImage, encodePng, InputError } from '../../engine/index';

export const UPLOAD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** Largest upload accepted, in bytes. */
export const MAX_UPLOAD_BYTES = 16 * 1024 * 1024;

export class Uploads {
  readonly dir: string;

  constructor(dataDir: string) {
    this.dir = join(dataDir, 'uploads');
    mkdirSync(this.dir, { recursive: true });
  }

  /** Check and store an image; an InputError names `field` when it is not a usable image. */
  async add(bytes: Buffer, field: string, name = 'the image'): Promise<{ id: string; width: number; height: number }> {
    if (!bytes.length) throw new InputError(field, `${name} is empty.`);
    let img;
    try {
      img = await decodeImage(bytes, { name, maxPixels: 4096 * 4096 });
    } catch (err) {
      if (err instanceof InputError) throw new InputError(field, `The \`${field}\` upload: ${err.message}`, { cause: err });
      throw err;
    }
    const id = randomUUID();
    await writeFile(join(this.dir, `${id}.png`), await encodePng(img.data, img.width, img.height));
    return { id, width: img.width, height: img.height };
  }

  /** The file of an upload id, or an InputError naming `field`. */
  path(id: string, field: string): string {
    const p = UPLOAD_ID.test(id) ? join(this.dir, `${id}.png`) : undefined;
    if (!p || !existsSync(p)) throw new InputError(field, `The \`${field}\` image (${id}) is not on this server any more; upload it again.`);
    return p;
  }
}
