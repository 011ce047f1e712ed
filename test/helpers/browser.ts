/**
 * Debian's chromium for the browser tests, driven by playwright-core (never a downloaded
 * browser). `browserBinary.skip` is the skip reason when it is missing (a loud notice locally,
 * a failure under CI=true, see system.ts).
 */
import { chromium, type Browser } from 'playwright-core';
import { requireBinary } from './system';

export const browserBinary = requireBinary('/usr/bin/chromium', 'apt-get install -y chromium');

/** Flags for a headless, sandbox-free chromium on a machine with no network but loopback. */
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'];

export function launchChromium(): Promise<Browser> {
  if (!browserBinary.path) throw new Error(`chromium is not available: ${browserBinary.skip}`);
  return chromium.launch({ executablePath: browserBinary.path, args: CHROMIUM_ARGS });
}
