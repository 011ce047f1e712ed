/**
 * Tests that need something from the system (a browser, redis) call these. Locally a missing
 * binary skips the test with a loud notice; in CI (CI=true) it fails, so a broken CI image
 * cannot pass by skipping everything.
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';

export const IN_CI = /^(1|true|yes)$/i.test(process.env.CI ?? '');

/** The absolute path of an executable, by absolute path or by name on PATH; null if absent. */
export function findBinary(nameOrPath: string): string | null {
  const candidates = isAbsolute(nameOrPath) ? [nameOrPath] : (process.env.PATH ?? '').split(delimiter).filter(Boolean).map((d) => join(d, nameOrPath));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch { /* next */ }
  }
  return null;
}

/**
 * The binary's path, or — when it is missing — a skip reason to hand to `it(…, { skip })`
 * after printing a loud notice. In CI it throws instead.
 *
 * @example
 * const chromium = requireBinary('/usr/bin/chromium', 'apt-get install -y chromium');
 * it('drives the page', { skip: chromium.skip }, async () => { … chromium.path … });
 */
export function requireBinary(nameOrPath: string, install: string): { path: string; skip: false } | { path: null; skip: string } {
  const path = findBinary(nameOrPath);
  if (path) return { path, skip: false };
  const why = `${nameOrPath} is not installed (${install})`;
  if (IN_CI) throw new Error(`CI=true and ${why}: this test must run in CI.`);
  const bar = '!'.repeat(78);
  console.warn(`\n${bar}\n!! SKIPPING: ${why}.\n!! This test did NOT run. Install it to run it; CI fails instead of skipping.\n${bar}\n`);
  return { path: null, skip: why };
}

/**
 * A WebGPU adapter through Dawn's Node binding (the optional `webgpu` package): its description,
 * or — when there is none — a skip reason after a loud notice (in CI, an error). Without a GPU,
 * Mesa's lavapipe (a software Vulkan driver, Mesa ≥ 23) provides one.
 */
export async function requireWebGpuAdapter(): Promise<{ device: string; skip: false } | { device: null; skip: string }> {
  let why: string;
  try {
    const { create } = (await import('webgpu')) as unknown as { create(flags: string[]): { requestAdapter(): Promise<{ info: { vendor: string; description: string } } | null> } };
    const adapter = await create([]).requestAdapter();
    if (adapter) return { device: `${adapter.info.vendor} ${adapter.info.description}`.trim(), skip: false };
    why = 'no WebGPU adapter (no GPU with a Vulkan driver, and no software Vulkan driver: apt-get install -t bookworm-backports mesa-vulkan-drivers)';
  } catch (err) {
    why = `the webgpu package could not load: ${(err as Error).message.split('\n')[0]}`;
  }
  if (IN_CI) throw new Error(`CI=true and ${why}: this test must run in CI.`);
  const bar = '!'.repeat(78);
  console.warn(`\n${bar}\n!! SKIPPING: ${why}.\n!! This test did NOT run. CI fails instead of skipping.\n${bar}\n`);
  return { device: null, skip: why };
}
