/**
 * How job data crosses Redis between a web node and a `clip-studio worker` on another machine.
 * BullMQ stores job data, progress and return values as JSON, so:
 *
 * - bytes (a PNG preview, the final image, its animation) travel as `{ $bytes: base64 }`;
 * - input files a web node holds (a generate job's uploaded init image and image prompts) travel
 *   inline as `{ $file: base64, name }` and the worker writes them to a temporary directory of
 *   its own, so workers need no shared disk with the web nodes;
 * - an engine error travels as the job's `failedReason`, a JSON object behind a marker, so the
 *   web node gets back the same `{ code, message, field }` the in-process pool would give.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { SerializedError } from '../../engine/index';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Replace every Uint8Array (Buffers included) by `{ $bytes: base64 }`; everything else as JSON would. */
export function encodeBytes(value: unknown): Json {
  if (value instanceof Uint8Array) return { $bytes: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') };
  if (Array.isArray(value)) return value.map(encodeBytes);
  if (value && typeof value === 'object') {
    const out: Record<string, Json> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = encodeBytes(v);
    return out;
  }
  return value as Json;
}

/** The inverse of `encodeBytes`: `{ $bytes }` become Buffers again. */
export function decodeBytes(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(decodeBytes);
  if (value && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    if (typeof o.$bytes === 'string' && Object.keys(o).length === 1) return Buffer.from(o.$bytes, 'base64');
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, decodeBytes(v)]));
  }
  return value;
}

/**
 * A job's parameters for the wire: a generate job's input files (`initImage`, `imagePrompts[i].path`,
 * paths the web node checked and made itself from upload ids) are read and inlined.
 */
export function paramsToWire(kind: string, params: unknown): Json {
  if (kind !== 'generate' || !params || typeof params !== 'object') return encodeBytes(params);
  const p = { ...(params as Record<string, unknown>) };
  const inline = (path: string) => ({ $file: readFileSync(path).toString('base64'), name: basename(path) });
  if (typeof p.initImage === 'string') p.initImage = inline(p.initImage);
  if (Array.isArray(p.imagePrompts)) {
    p.imagePrompts = p.imagePrompts.map((ip: unknown) => {
      const spec = ip as { path?: unknown };
      return typeof spec?.path === 'string' ? { ...spec, path: inline(spec.path) } : ip;
    });
  }
  return encodeBytes(p);
}

/**
 * The worker's side: inlined files are written under a fresh temporary directory and replaced by
 * their paths. Call `cleanup()` when the job has ended.
 */
export function paramsFromWire(wire: unknown): { params: unknown; cleanup(): void } {
  let dir: string | undefined;
  let n = 0;
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      if (typeof o.$file === 'string' && typeof o.name === 'string') {
        dir ??= mkdtempSync(join(tmpdir(), 'clip-studio-job-'));
        const sub = join(dir, String(n++));
        mkdirSync(sub);
        // basename(): the name is only a hint for the decoder; it must never climb out of `sub`.
        const path = join(sub, basename(o.name) || 'input');
        writeFileSync(path, Buffer.from(o.$file, 'base64'));
        return path;
      }
      if (typeof o.$bytes === 'string' && Object.keys(o).length === 1) return Buffer.from(o.$bytes, 'base64');
      return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, walk(x)]));
    }
    return v;
  };
  const params = walk(wire);
  return { params, cleanup: () => dir && rmSync(dir, { recursive: true, force: true }) };
}

const ERROR_MARK = 'clip-studio-error:';

/** An engine error as a BullMQ failure reason (an Error's message). */
export function errorToReason(e: SerializedError): string {
  return ERROR_MARK + JSON.stringify({ name: e.name, code: e.code, message: e.message, ...(e.field ? { field: e.field } : {}) });
}

/** A BullMQ failure reason back to the engine's error (anything else: code INTERNAL, the text kept). */
export function reasonToError(reason: string | undefined): SerializedError {
  if (reason?.startsWith(ERROR_MARK)) {
    try {
      const e = JSON.parse(reason.slice(ERROR_MARK.length)) as SerializedError;
      if (typeof e.code === 'string' && typeof e.message === 'string') return e;
    } catch { /* fall through */ }
  }
  // BullMQ's own reasons ("job stalled more than allowable limit") are for people: keep the text.
  return { name: 'JobFailed', code: /stalled/i.test(reason ?? '') ? 'STALLED' : 'INTERNAL', message: reason || 'The job failed.' };
}
