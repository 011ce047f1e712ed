/**
 * The reference fixture CLIP and VQGAN (tiny random models: VQGAN factor 4, CLIP input 64)
 * installed as bundled models `fixture-clip` and `fixture-vqgan` in a temporary manifests
 * directory, so servers, workers and the CLI can be pointed at them by id in fast tests.
 */
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { REPO_ROOT } from './fixtures';

export const FIXTURE_DIR = resolve(REPO_ROOT, '../shared/fixtures/reference');

/** Create the manifests directory; the caller removes it. */
export function fixtureManifests(): string {
  const dir = mkdtempSync(join(tmpdir(), 'clip-studio-manifests-'));
  const install = (id: string, family: 'clip' | 'vqgan', files: string[]) => {
    mkdirSync(join(dir, id));
    for (const f of files) copyFileSync(join(FIXTURE_DIR, f), join(dir, id, f));
    writeFileSync(join(dir, id, 'model.json'), JSON.stringify({
      id, family, title: `reference fixture ${family}`, bundled: true, license: 'MIT', files: files.map((path) => ({ path, required: true })),
    }));
  };
  install('fixture-clip', 'clip', ['clip_config.json', 'clip.safetensors']);
  install('fixture-vqgan', 'vqgan', ['vqgan_config.json', 'vqgan.safetensors']);
  return dir;
}
