/**
 * HTTP routes of the generate studio (served by server/http.ts before Next):
 *
 *   GET    /api/generate/info        active models, backend, defaults, limits, demo vocabulary
 *   POST   /api/uploads?field=F      an image (raw body) → {id, width, height}; 400 names F when it is not an image
 *   GET    /api/gallery              {items: GalleryItem[]} newest first (?limit, ?offset)
 *   GET    /api/gallery/:id          one item
 *   DELETE /api/gallery/:id          remove it and its files
 *   GET    /api/images/:id.png|.webp the image or its progress animation
 *
 * Ids are checked against a strict pattern before they touch the file system, so no path can
 * be smuggled in. Uploads are rate-limited per address; JSON goes out through the redactor.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { InputError } from '../../engine/index';
import type { ApiContext } from '../http';
import { clientAddress } from '../limits';
import { GALLERY_ID } from '../store/gallery';
import { toGalleryItem, type GenerateService } from './generate';
import { MAX_UPLOAD_BYTES } from './uploads';

function sendJson(res: ServerResponse, status: number, body: unknown, redact: <T>(v: T) => T = (v) => v): void {
  const text = JSON.stringify(redact(body));
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function methodNotAllowed(res: ServerResponse, method: string | undefined, path: string, allowed: string[]): void {
  res.setHeader('allow', allowed.join(', '));
  sendJson(res, 405, { error: `${method} is not allowed on ${path}; use ${allowed.join(' or ')}` });
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) return null;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Fields an upload may be for: generate's init image and image prompts, caption's image. */
const UPLOAD_FIELDS = /^(initImage|imagePrompts\.\d|image)$/;

/** The name an upload's errors use: what the client said, printable and short, or "the image". */
function uploadName(raw: string | null): string {
  // eslint-disable-next-line no-control-regex
  const clean = (raw ?? '').replace(/[\u0000-\u001f\u007f<>"'`\\]/g, '').trim().slice(0, 100);
  return clean || 'the image';
}

/** A path segment, decoded; undefined when it is not valid percent-encoding. */
function decodeSegment(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

/** Answer a studio route; false when the path is not one of them. */
export async function handleStudioApi(
  req: IncomingMessage, res: ServerResponse, url: URL, studio: GenerateService, backend: () => Promise<string | null>,
  ctx: Pick<ApiContext, 'limits' | 'config' | 'redact'>,
): Promise<boolean> {
  const json = (status: number, value: unknown): void => sendJson(res, status, value, ctx.redact);
  const path = url.pathname;
  if (path === '/api/generate/info') {
    if (req.method !== 'GET') return methodNotAllowed(res, req.method, path, ['GET']), true;
    json(200, studio.info(await backend()));
    return true;
  }
  if (path === '/api/uploads') {
    if (req.method !== 'POST') return methodNotAllowed(res, req.method, path, ['POST']), true;
    const field = url.searchParams.get('field') ?? 'image';
    if (!UPLOAD_FIELDS.test(field)) return json(400, { field: 'field', error: `field must be initImage, imagePrompts.N or image, got ${JSON.stringify(field.slice(0, 50))}` }), true;
    const verdict = await ctx.limits.take('upload', { address: clientAddress(req, ctx.config.trustProxy) });
    if (!verdict.ok) {
      res.setHeader('retry-after', String(Math.ceil(verdict.retryAfterMs / 1000)));
      return json(429, { field, code: 'RATE_LIMITED', error: verdict.message }), true;
    }
    const declared = Number(req.headers['content-length'] ?? 0);
    const body = declared > MAX_UPLOAD_BYTES ? null : await readBody(req, MAX_UPLOAD_BYTES);
    if (!body) return json(413, { field, error: `The \`${field}\` upload is larger than ${MAX_UPLOAD_BYTES / 2 ** 20} MiB.` }), true;
    try {
      json(201, await studio.uploads.add(body, field, uploadName(url.searchParams.get('name'))));
    } catch (err) {
      if (!(err instanceof InputError)) throw err;
      json(400, { field: err.field, error: err.message });
    }
    return true;
  }
  if (path === '/api/gallery') {
    if (req.method !== 'GET') return methodNotAllowed(res, req.method, path, ['GET']), true;
    const limit = Math.min(500, Math.max(1, Number(url.searchParams.get('limit') ?? 100) || 100));
    const offset = Math.max(0, Number(url.searchParams.get('offset') ?? 0) || 0);
    json(200, { items: studio.gallery.list({ limit, offset }).map(toGalleryItem), total: studio.gallery.count() });
    return true;
  }
  const item = /^\/api\/gallery\/([^/]+)$/.exec(path);
  if (item) {
    const id = decodeSegment(item[1]!);
    if (id === undefined || !GALLERY_ID.test(id)) return json(404, { error: `No gallery item ${JSON.stringify(item[1]!.slice(0, 100))}` }), true;
    if (req.method === 'GET') {
      const rec = studio.gallery.get(id);
      json(rec ? 200 : 404, rec ? toGalleryItem(rec) : { error: `No gallery item ${id}` });
    } else if (req.method === 'DELETE') {
      const removed = await studio.gallery.delete(id);
      json(removed ? 200 : 404, removed ? { deleted: id } : { error: `No gallery item ${id}` });
    } else {
      methodNotAllowed(res, req.method, path, ['GET', 'DELETE']);
    }
    return true;
  }
  const image = /^\/api\/images\/([^/]+)\.(png|webp)$/.exec(path);
  if (image || path.startsWith('/api/images/')) {
    if (req.method !== 'GET' && req.method !== 'HEAD') return methodNotAllowed(res, req.method, path, ['GET', 'HEAD']), true;
    const file = image && GALLERY_ID.test(image[1]!) ? studio.gallery.filePath(image[1]!, image[2] as 'png' | 'webp') : undefined;
    const st = file ? await stat(file).catch(() => undefined) : undefined;
    if (!file || !st?.isFile()) return json(404, { error: `No image ${path.slice('/api/images/'.length, '/api/images/'.length + 100)}` }), true;
    res.writeHead(200, {
      'content-type': image![2] === 'png' ? 'image/png' : 'image/webp', 'content-length': st.size,
      'cache-control': 'public, max-age=31536000, immutable', 'x-content-type-options': 'nosniff',
    });
    if (req.method === 'HEAD') return res.end(), true;
    createReadStream(file).pipe(res);
    return true;
  }
  return false;
}
