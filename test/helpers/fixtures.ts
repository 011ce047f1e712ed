/**
 * The reference fixture sets the parity suite runs over: every directory in
 * CLIP_STUDIO_FIXTURES (`:`-separated), default ../shared/fixtures/reference.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

export const REPO_ROOT = resolve(new URL('../..', import.meta.url).pathname);

export function fixtureDirs(): string[] {
  const raw = process.env.CLIP_STUDIO_FIXTURES || resolve(REPO_ROOT, '../shared/fixtures/reference');
  const dirs = raw.split(':').filter(Boolean).map((d) => resolve(REPO_ROOT, d));
  for (const d of dirs) {
    if (!existsSync(d)) throw new Error(`CLIP_STUDIO_FIXTURES names ${d}, which does not exist`);
  }
  return dirs;
}

/** max |a - b| over two equal-length arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

/** The README's tolerance for embeddings and activations: 1e-4 · max(1, max|ref|). */
export function activationTolerance(ref: ArrayLike<number>): number {
  return 1e-4 * Math.max(1, maxAbs(ref));
}

export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) { ab += a[i]! * b[i]!; aa += a[i]! ** 2; bb += b[i]! ** 2; }
  return ab / Math.sqrt(aa * bb);
}
