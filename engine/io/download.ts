/**
 * Resumable, verified file downloads (the part of `huggingface_hub.hf_hub_download` we need):
 * bytes stream into `dest + '.part'`; an interrupted transfer resumes with `Range: bytes=N-`;
 * the sha256 covers the whole file, the resumed part included; `dest` appears only after the
 * checksum matched, by an atomic rename. Nothing here reads process.env: the caller passes the
 * endpoint and token in.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat, truncate } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CancelledError, ChecksumError, DownloadError } from '../errors';

/** How far a download has come. `total` is null when the server did not say. */
export interface DownloadProgress {
  url: string;
  received: number;
  total: number | null;
  /** Bytes that were already on disk from an earlier, interrupted try. */
  resumedFrom: number;
}

export interface DownloadOptions {
  url: string;
  /** Final path; the transfer writes `dest + '.part'` and renames it after verification. */
  dest: string;
  /** Lower-case hex sha256 the file must have. When absent, a 64-hex ETag from the hub is used. */
  expectedSha256?: string;
  /** Extra request headers (`Authorization` for a token). Never logged; dropped on a redirect to another host. */
  headers?: Record<string, string>;
  onProgress?: (p: DownloadProgress) => void;
  signal?: AbortSignal;
  /** How many times a failed connection is retried (resuming each time). Default 3, range 0..20. */
  retries?: number;
  /** First back-off delay in ms, doubled on each retry. Default 500. */
  retryDelayMs?: number;
}

/** Where the checksum a download was checked against came from. */
export type ChecksumSource = 'pinned' | 'etag' | 'none';

export interface DownloadResult {
  path: string;
  size: number;
  sha256: string;
  checksumSource: ChecksumSource;
  /** Bytes the final request did not fetch: already on disk from an interrupted try (0 when none). */
  resumedFrom: number;
  /** HTTP requests made, retries included. */
  requests: number;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;
const MAX_REDIRECTS = 10;

/**
 * The Hugging Face "resolve" URL of one file of a repo at a revision.
 *
 * @example
 * hfResolveUrl('https://huggingface.co', 'openai/clip-vit-base-patch32', 'main', 'config.json');
 * // 'https://huggingface.co/openai/clip-vit-base-patch32/resolve/main/config.json'
 */
export function hfResolveUrl(endpoint: string, repo: string, revision: string, file: string): string {
  const base = endpoint.replace(/\/+$/, '');
  const path = file.split('/').map(encodeURIComponent).join('/');
  return `${base}/${repo}/resolve/${encodeURIComponent(revision)}/${path}`;
}

/**
 * Download `url` to `dest`, resuming a `.part` left by an earlier try and verifying the sha256.
 * Throws DownloadError (HTTP status, network, disk full), ChecksumError (nothing is installed and
 * the `.part` is deleted) or CancelledError (the `.part` is kept for a later resume).
 *
 * @example
 * const r = await downloadFile({ url: 'https://example.org/model.safetensors', dest: 'data/models/x/model.safetensors',
 *   expectedSha256: '99d28a65…', onProgress: (p) => console.error(p.received, p.total) });
 * r.sha256; // verified digest
 */
export async function downloadFile(opts: DownloadOptions): Promise<DownloadResult> {
  const retries = opts.retries ?? 3;
  if (!Number.isInteger(retries) || retries < 0 || retries > 20) {
    throw new RangeError(`The \`retries\` option must be an integer between 0 and 20, got ${retries}`);
  }
  const pinned = opts.expectedSha256?.toLowerCase();
  if (pinned !== undefined && !SHA256_HEX.test(pinned)) {
    throw new RangeError(`The \`expectedSha256\` option must be 64 hex digits, got ${JSON.stringify(opts.expectedSha256)}`);
  }
  const delay = opts.retryDelayMs ?? 500;
  const part = `${opts.dest}.part`;
  await mkdir(dirname(opts.dest), { recursive: true });

  let requests = 0;
  let failures = 0;
  let etagSha: string | undefined;
  for (;;) {
    throwIfAborted(opts.signal, opts.url, part);
    let offset = await fileSize(part);
    const hash = createHash('sha256');
    if (offset > 0) await hashFile(part, hash);

    let res: Response;
    try {
      requests++;
      const r = await request(opts.url, { ...opts.headers, ...(offset > 0 ? { Range: `bytes=${offset}-` } : {}) }, opts.signal);
      res = r.response;
      etagSha ??= r.linkedSha256;
    } catch (err) {
      throwIfAborted(opts.signal, opts.url, part);
      if (err instanceof DownloadError) throw err;
      if (++failures > retries) throw networkError(opts.url, part, failures, err);
      await sleep(delay * 2 ** (failures - 1), opts.signal);
      continue;
    }

    if (res.status === 416) {
      // The .part is at least as long as the file: either it is complete, or it belongs to
      // another version. Verify it as it is; a mismatch below deletes it.
      await res.body?.cancel();
      const total = Number(/\/(\d+)$/.exec(res.headers.get('content-range') ?? '')?.[1]);
      if (total === offset) return finish(opts, part, hash, offset, pinned, etagSha, offset, requests);
      await rm(part, { force: true });
      continue;
    }
    if (!res.ok) {
      await res.body?.cancel();
      if (isTransient(res.status) && ++failures <= retries) {
        await sleep(delay * 2 ** (failures - 1), opts.signal);
        continue;
      }
      throw httpError(opts.url, res.status, res.statusText);
    }
    etagSha ??= sha256FromEtag(res.headers);

    let append = false;
    let bodyHash = hash;
    if (offset > 0 && res.status === 206) {
      const start = Number(/bytes (\d+)-/.exec(res.headers.get('content-range') ?? '')?.[1]);
      if (start !== offset) {
        await res.body?.cancel();
        await rm(part, { force: true });
        continue;
      }
      append = true;
    } else if (offset > 0) {
      // 200 to a Range request: the server ignored the range and sends the whole file.
      await truncate(part, 0);
      offset = 0;
      bodyHash = createHash('sha256');
    }
    const result = await downloadBody(opts, res, part, bodyHash, offset, append, pinned, etagSha, requests)
      .catch((err) => retryOrThrow(err));
    if (result) return result;
  }

  // The body stream failed: retry (the loop resumes from what reached the disk) or give up.
  async function retryOrThrow(err: unknown): Promise<undefined> {
    throwIfAborted(opts.signal, opts.url, part);
    if (err instanceof DownloadError || err instanceof ChecksumError) throw err;
    if (++failures > retries) throw networkError(opts.url, part, failures, err);
    await sleep(delay * 2 ** (failures - 1), opts.signal);
    return undefined;
  }
}

async function downloadBody(
  opts: DownloadOptions, res: Response, part: string, hash: Hash, offset: number, append: boolean,
  pinned: string | undefined, etagSha: string | undefined, requests: number,
): Promise<DownloadResult> {
  const length = Number(res.headers.get('content-length') ?? NaN);
  const total = Number.isFinite(length) ? offset + length : null;
  let received = offset;
  opts.onProgress?.({ url: opts.url, received, total, resumedFrom: offset });
  const meter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      received += chunk.length;
      opts.onProgress?.({ url: opts.url, received, total, resumedFrom: offset });
      done(null, chunk);
    },
  });
  if (!res.body) throw new DownloadError(`The server sent no body for ${opts.url}`, res.status);
  try {
    await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), meter,
      createWriteStream(part, { flags: append ? 'a' : 'w' }), { signal: opts.signal });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOSPC') {
      throw new DownloadError(`No space left on the disk while writing ${part} (${received} bytes written). ` +
        'Free some space and fetch again: the download resumes from there.', undefined, { cause: err });
    }
    throw err;
  }
  if (total !== null && received !== total) {
    throw new Error(`connection closed after ${received} of ${total} bytes`);
  }
  return finish(opts, part, hash, received, pinned, etagSha, offset, requests);
}

async function finish(
  opts: DownloadOptions, part: string, hash: Hash, size: number,
  pinned: string | undefined, etagSha: string | undefined, resumedFrom: number, requests: number,
): Promise<DownloadResult> {
  const sha256 = hash.digest('hex');
  const expected = pinned ?? etagSha;
  const checksumSource: ChecksumSource = pinned ? 'pinned' : etagSha ? 'etag' : 'none';
  if (expected && sha256 !== expected) {
    await rm(part, { force: true });
    throw new ChecksumError(`The file downloaded from ${opts.url} has sha256 ${sha256}, but ${expected} was expected ` +
      `(${checksumSource === 'pinned' ? 'pinned in the manifest' : "from the server's ETag"}). It was deleted; nothing was installed.`);
  }
  await rename(part, opts.dest);
  return { path: opts.dest, size, sha256, checksumSource, resumedFrom, requests };
}

/**
 * GET with redirects followed by hand, so that the hub's `X-Linked-Etag` (the LFS sha256, sent
 * on the redirect to the CDN) is seen, and so that `Authorization` never leaves the first host.
 */
async function request(url: string, headers: Record<string, string>, signal?: AbortSignal):
  Promise<{ response: Response; linkedSha256?: string }> {
  let current = url;
  let linkedSha256: string | undefined;
  let sendHeaders = { ...headers };
  const origin = new URL(url).origin;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const response = await fetch(current, { headers: sendHeaders, redirect: 'manual', signal });
    linkedSha256 ??= sha256FromEtag(response.headers, true);
    const location = response.headers.get('location');
    if (response.status >= 300 && response.status < 400 && location) {
      await response.body?.cancel();
      current = new URL(location, current).toString();
      if (new URL(current).origin !== origin) {
        sendHeaders = Object.fromEntries(Object.entries(sendHeaders).filter(([k]) => k.toLowerCase() !== 'authorization'));
      }
      continue;
    }
    return { response, linkedSha256 };
  }
  throw new DownloadError(`Too many redirects (over ${MAX_REDIRECTS}) while fetching ${url}`);
}

/** A sha256 from `X-Linked-Etag` (the hub, for LFS files) or a plain `ETag`, if it is 64 hex digits. */
function sha256FromEtag(headers: Headers, linkedOnly = false): string | undefined {
  const raw = headers.get('x-linked-etag') ?? (linkedOnly ? null : headers.get('etag'));
  const value = raw?.replace(/^W\//, '').replace(/"/g, '').trim().toLowerCase();
  return value && SHA256_HEX.test(value) ? value : undefined;
}

function httpError(url: string, status: number, statusText: string): DownloadError {
  const hint = status === 404 ? ' The file or revision does not exist there.'
    : status === 401 || status === 403 ? ' The server refused access: a gated or private repo needs a token (HF_TOKEN).'
    : '';
  return new DownloadError(`Download of ${url} failed: HTTP ${status}${statusText ? ` ${statusText}` : ''}.${hint}`, status);
}

function networkError(url: string, part: string, tries: number, cause: unknown): DownloadError {
  const why = cause instanceof Error ? (cause.cause instanceof Error ? cause.cause.message : cause.message) : String(cause);
  return new DownloadError(`Download of ${url} failed after ${tries} tries: ${why}. ` +
    `The partial file ${part} is kept; fetching again resumes it.`, undefined, { cause });
}

function isTransient(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

function throwIfAborted(signal: AbortSignal | undefined, url: string, part: string): void {
  if (signal?.aborted) throw new CancelledError(`The download of ${url} was cancelled; ${part} is kept for a later resume.`);
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

async function hashFile(path: string, hash: Hash): Promise<void> {
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
}
