/**
 * The studio's configuration: the only place that reads process.env. Parsed and validated once;
 * a bad value fails at start with a message that names the variable and what it accepts.
 *
 * @example
 * const config = loadConfig();           // throws ConfigError naming e.g. CLIP_STUDIO_WORKERS
 * server.listen(config.port, config.host);
 */
import { resolve } from 'node:path';
import { z } from 'zod';

const BACKENDS = ['auto', 'node-gpu', 'node', 'webgpu', 'wasm', 'cpu'] as const;
/** onnxruntime's execution providers (engine/runtime/onnx.ts reads the variable; it is checked here at start). */
const ORT_PROVIDERS = ['auto', 'cpu', 'cuda', 'webgpu'] as const;

export class ConfigError extends Error {
  constructor(readonly variable: string, message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Empty strings count as unset: `PORT= npm start` means "the default", not an error. */
const optionalString = z.preprocess((v) => (v === '' ? undefined : v), z.string().optional());

function intVar(min: number, max: number, fallback: number) {
  return z.preprocess(
    (v) => (v === undefined || v === '' ? fallback : v),
    z.coerce.number().int().min(min).max(max),
  );
}

/** A comma-separated list of origins (scheme://host[:port]), each checked. */
const originList = z.preprocess(
  (v) => (v === undefined || v === '' ? [] : String(v).split(',').map((o) => o.trim()).filter(Boolean)),
  z.array(z.string().regex(/^https?:\/\/[a-z0-9.-]+(:\d{1,5})?$/i)),
);

const flag = z.preprocess((v) => (v === undefined || v === '' ? '0' : v), z.enum(['0', '1', 'true', 'false']).transform((v) => v === '1' || v === 'true'));

function urlVar() {
  return z.preprocess((v) => (v === '' ? undefined : v), z.url().optional());
}

const EnvSchema = z.object({
  PORT: intVar(0, 65535, 3000),
  HOST: optionalString,
  NODE_ENV: optionalString,
  CLIP_STUDIO_DATA: optionalString,
  CLIP_STUDIO_MODELS: optionalString,
  CLIP_STUDIO_BACKEND: z.preprocess((v) => (v === '' || v === undefined ? 'auto' : v), z.enum(BACKENDS)),
  CLIP_STUDIO_ORT_PROVIDER: z.preprocess((v) => (v === '' || v === undefined ? 'auto' : String(v).trim().toLowerCase()), z.enum(ORT_PROVIDERS)),
  CLIP_STUDIO_WORKERS: intVar(1, 64, 1),
  CLIP_STUDIO_QUEUE: intVar(0, 10_000, 16),
  CLIP_STUDIO_CORS_ORIGINS: originList,
  CLIP_STUDIO_TRUST_PROXY: flag,
  CLIP_STUDIO_SHUTDOWN_MS: intVar(0, 600_000, 10_000),
  CLIP_STUDIO_ROOM_LEASE_MS: intVar(1_000, 600_000, 30_000),
  OPENAI_BASE_URL: urlVar(),
  OPENAI_API_KEY: optionalString,
  CAPTION_LLM_MODEL: optionalString,
  CAPTION_LLM_TIMEOUT_MS: intVar(100, 600_000, 30_000),
  REDIS_URL: urlVar(),
  HF_ENDPOINT: urlVar(),
  HF_TOKEN: optionalString,
});

/** What each variable accepts, for the error message (and the README table). */
const ALLOWED: Record<string, string> = {
  PORT: 'an integer port 0–65535 (default 3000)',
  CLIP_STUDIO_BACKEND: `one of ${BACKENDS.join(', ')}`,
  CLIP_STUDIO_ORT_PROVIDER: `one of ${ORT_PROVIDERS.join(', ')}`,
  CLIP_STUDIO_WORKERS: 'an integer 1–64 (default 1)',
  CLIP_STUDIO_QUEUE: 'an integer 0–10000 (default 16)',
  CLIP_STUDIO_CORS_ORIGINS: 'a comma-separated list of origins such as https://studio.example.org,http://localhost:3000',
  CLIP_STUDIO_TRUST_PROXY: '0 or 1 (default 0)',
  CLIP_STUDIO_SHUTDOWN_MS: 'an integer 0–600000 (default 10000)',
  CLIP_STUDIO_ROOM_LEASE_MS: 'an integer 1000–600000 (default 30000)',
  OPENAI_BASE_URL: 'a URL such as http://localhost:11434/v1',
  CAPTION_LLM_TIMEOUT_MS: 'an integer 100–600000 (default 30000)',
  REDIS_URL: 'a URL such as redis://localhost:6379',
  HF_ENDPOINT: 'a URL such as https://huggingface.co',
};

export interface StudioConfig {
  port: number;
  /** Undefined: listen on every interface, as Node does by default. */
  host: string | undefined;
  dev: boolean;
  test: boolean;
  /** Absolute path of the data directory (gallery, database, caches). */
  dataDir: string;
  /** Absolute path where downloaded models live. */
  modelsDir: string;
  /** `auto` lets the engine pick; anything else is forced and an error if it cannot start. */
  backend: (typeof BACKENDS)[number];
  /** onnxruntime's provider for inference: `auto` is CUDA when installed, else CPU; `webgpu` is asked for. */
  ortProvider: (typeof ORT_PROVIDERS)[number];
  workers: number;
  /** How many jobs may wait for a worker before new ones are refused as busy. */
  queueLimit: number;
  /** Other origins allowed to call /api and open sockets (the studio's own origin always may). */
  corsOrigins: string[];
  /** Behind a proxy you run: take the client's address from X-Forwarded-For (rate limits). */
  trustProxy: boolean;
  /** On SIGTERM, how long running jobs may take to finish before they are interrupted. */
  shutdownMs: number;
  /** With Redis: how long a game room's owner lease lasts; a node that stops renewing it loses its rooms to others after this. */
  roomLeaseMs: number;
  /** The caption LLM; `timeoutMs` is per call (CAPTION_LLM_TIMEOUT_MS; left out: the caption client's default). */
  llm: { baseUrl: string | undefined; apiKey: string | undefined; model: string | undefined; timeoutMs?: number };
  redisUrl: string | undefined;
  hf: { endpoint: string; token: string | undefined };
}

/**
 * Parse an environment (process.env by default). Relative paths resolve against `cwd`.
 * Throws ConfigError for the first invalid variable.
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>> = process.env, opts: { cwd?: string; dev?: boolean } = {}): StudioConfig {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const variable = String(issue.path[0] ?? 'environment');
    const got = env[variable];
    const allowed = ALLOWED[variable] ?? 'a valid value';
    throw new ConfigError(variable, `${variable} must be ${allowed}, got ${JSON.stringify(got)}`);
  }
  const e = parsed.data;
  const cwd = opts.cwd ?? process.cwd();
  const dataDir = resolve(cwd, e.CLIP_STUDIO_DATA ?? 'data');
  return {
    port: e.PORT,
    host: e.HOST,
    dev: opts.dev ?? false,
    test: e.NODE_ENV === 'test',
    dataDir,
    modelsDir: resolve(cwd, e.CLIP_STUDIO_MODELS ?? resolve(dataDir, 'models')),
    backend: e.CLIP_STUDIO_BACKEND,
    ortProvider: e.CLIP_STUDIO_ORT_PROVIDER,
    workers: e.CLIP_STUDIO_WORKERS,
    queueLimit: e.CLIP_STUDIO_QUEUE,
    corsOrigins: e.CLIP_STUDIO_CORS_ORIGINS.map((o) => o.toLowerCase()),
    trustProxy: e.CLIP_STUDIO_TRUST_PROXY,
    shutdownMs: e.CLIP_STUDIO_SHUTDOWN_MS,
    roomLeaseMs: e.CLIP_STUDIO_ROOM_LEASE_MS,
    llm: { baseUrl: e.OPENAI_BASE_URL, apiKey: e.OPENAI_API_KEY, model: e.CAPTION_LLM_MODEL, timeoutMs: e.CAPTION_LLM_TIMEOUT_MS },
    redisUrl: e.REDIS_URL,
    hf: { endpoint: e.HF_ENDPOINT ?? 'https://huggingface.co', token: e.HF_TOKEN },
  };
}
