/**
 * What every response carries and what none may leak:
 *
 * - Security headers on every response; a fresh nonce-based Content-Security-Policy for each
 *   page (Next reads the nonce from the request's CSP header and puts it on its scripts), a
 *   closed one for the API. `connect-src` allows the page's own origin over ws:/wss: for socket.io.
 * - CORS: the studio's own origin, plus CLIP_STUDIO_CORS_ORIGINS; any other browser origin is
 *   refused on /api and on socket.io (a WebSocket ignores CORS, so the handshake checks Origin).
 * - Redaction: the data directory, models directory, the studio's install path, the home
 *   directory and the configured secrets (LLM key, HF token) are replaced before JSON or socket
 *   payloads leave the server. `clip-studio doctor` on the machine shows the real paths.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { homedir } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { StudioConfig } from './config';

/** Headers every response gets, pages, API and assets alike. */
export const BASE_HEADERS: Readonly<Record<string, string>> = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=(), payment=(), usb=()',
  'origin-agent-cluster': '?1',
};

/** The API serves JSON and images; nothing in it may run script or be framed. */
export const API_CSP = "default-src 'none'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/** A host header we are willing to echo into the CSP (name or IP, optional port). */
const SAFE_HOST = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:\d{1,5})?$/i;

/** A fresh, unguessable nonce (128 bits, base64 as Next's nonce pattern expects). */
export function newNonce(): string {
  return randomBytes(16).toString('base64');
}

/**
 * The page policy for one response. `host` (the request's Host) adds the same origin's
 * WebSocket URLs to connect-src for browsers whose 'self' does not cover ws:/wss:; dev adds
 * 'unsafe-eval' (React's dev tooling) and nothing else.
 */
export function pageCsp(nonce: string, opts: { dev: boolean; host?: string }): string {
  const ws = opts.host && SAFE_HOST.test(opts.host) ? ` ws://${opts.host} wss://${opts.host}` : '';
  return [
    "default-src 'self'",
    `script-src 'self' 'nonce-${nonce}' 'strict-dynamic'${opts.dev ? " 'unsafe-eval'" : ''}`,
    // React writes style attributes into server-rendered HTML; those cannot carry a nonce.
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' blob: data:",
    "media-src 'self' blob:",
    "font-src 'self' data:",
    `connect-src 'self'${ws}`,
    "worker-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** Set the headers every response gets; `csp` for this response (page or API). */
export function applySecurityHeaders(res: ServerResponse, csp: string): void {
  for (const [k, v] of Object.entries(BASE_HEADERS)) res.setHeader(k, v);
  res.setHeader('content-security-policy', csp);
}

/**
 * Prepare a page request for Next: a fresh nonce in the request's CSP header (Next takes it
 * from there for its scripts) and the same policy on the response.
 */
export function preparePageRequest(req: IncomingMessage, res: ServerResponse, config: Pick<StudioConfig, 'dev'>): string {
  const nonce = newNonce();
  const csp = pageCsp(nonce, { dev: config.dev, host: req.headers.host });
  req.headers['content-security-policy'] = csp;
  delete req.headers['content-security-policy-report-only'];
  req.headers['x-nonce'] = nonce;
  applySecurityHeaders(res, csp);
  return nonce;
}

// ---------------------------------------------------------------------------------------------
// Origins (CORS for /api, the socket.io handshake)

/**
 * Whether a browser request may act here: no Origin header (not a browser's cross-origin
 * request: curl, the CLI, a same-origin GET), the studio's own origin (Origin's host equals the
 * Host header), or an origin on the allow-list.
 */
export function originAllowed(origin: string | undefined, host: string | undefined, allowList: readonly string[]): boolean {
  if (origin === undefined) return true;
  const o = origin.toLowerCase();
  if (allowList.includes(o)) return true;
  try {
    const u = new URL(o);
    return (u.protocol === 'http:' || u.protocol === 'https:') && !!host && u.host === host.toLowerCase();
  } catch {
    return false; // "null" (sandboxed frames, file://) and garbage
  }
}

/**
 * CORS for an /api request. Returns false when it has been answered (a preflight, or a refused
 * origin with 403); true when the route should run (with CORS headers set for an allowed
 * cross-origin caller).
 */
export function handleCors(req: IncomingMessage, res: ServerResponse, allowList: readonly string[]): boolean {
  const origin = req.headers.origin;
  const allowed = originAllowed(origin, req.headers.host, allowList);
  res.setHeader('vary', 'Origin');
  if (!allowed) {
    const text = JSON.stringify({ error: `Origin ${JSON.stringify(origin)} may not call this API; ask the operator to add it to CLIP_STUDIO_CORS_ORIGINS.` });
    res.writeHead(403, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
    res.end(text);
    return false;
  }
  if (origin !== undefined) {
    res.setHeader('access-control-allow-origin', origin);
    res.setHeader('access-control-allow-methods', 'GET, HEAD, POST, DELETE');
    res.setHeader('access-control-allow-headers', 'content-type');
    res.setHeader('access-control-max-age', '600');
  }
  if (req.method === 'OPTIONS') {
    res.writeHead(204).end();
    return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Redaction

const STUDIO_ROOT = fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, '');

/**
 * A function that replaces the server's paths and secrets in any JSON-like value (strings
 * anywhere in it, keys included), longest path first so `$CLIP_STUDIO_MODELS` wins over
 * `$CLIP_STUDIO_DATA/models`.
 *
 * @example
 * const redact = makeRedactor(config);
 * res.end(JSON.stringify(redact(report)));
 */
export function makeRedactor(config: Pick<StudioConfig, 'dataDir' | 'modelsDir' | 'llm' | 'hf'>): <T>(value: T) => T {
  const pairs: [string, string][] = [
    [config.modelsDir, '$CLIP_STUDIO_MODELS'],
    [config.dataDir, '$CLIP_STUDIO_DATA'],
    [STUDIO_ROOT, '<studio>'],
    [homedir(), '~'],
  ].filter(([p]) => p && p.length > 1) as [string, string][];
  pairs.sort((a, b) => b[0].length - a[0].length);
  const secrets = [config.llm.apiKey, config.hf.token].filter((s): s is string => !!s && s.length >= 4);
  const redactString = (s: string): string => {
    let out = s;
    for (const secret of secrets) if (out.includes(secret)) out = out.split(secret).join('[redacted]');
    for (const [path, name] of pairs) if (out.includes(path)) out = out.split(path).join(name);
    return out;
  };
  const walk = (v: unknown, depth: number): unknown => {
    if (typeof v === 'string') return redactString(v);
    if (depth > 64 || v === null || typeof v !== 'object') return v;
    if (Buffer.isBuffer(v) || ArrayBuffer.isView(v) || v instanceof ArrayBuffer) return v;
    if (Array.isArray(v)) return v.map((x) => walk(x, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[redactString(k)] = walk(x, depth + 1);
    return out;
  };
  return <T>(value: T) => walk(value, 0) as T;
}
