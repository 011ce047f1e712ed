/**
 * The studio's wire protocol: one file, shared by the server (which validates every incoming
 * payload with these schemas before anything else touches it) and the app (which imports the
 * inferred types only). Event names say their direction: `job:start` comes from the client,
 * `job:progress` from the server.
 */
import { z } from 'zod';
import { GENERATE_LIMITS, GENERATE_STARTS, MAX_IMAGE_PROMPTS, PROMPT_MAX_LENGTH, rangeText } from '../engine/index';

/** Bumped on any incompatible change; the server refuses a `hello` with another version. */
export const PROTOCOL_VERSION = 1;

/** Events the client sends. */
export const ClientEvent = {
  hello: 'hello',
  healthGet: 'health:get',
  jobStart: 'job:start',
  jobCancel: 'job:cancel',
} as const;

/** Events the server sends. */
export const ServerEvent = {
  hello: 'hello',
  healthReport: 'health:report',
  jobQueued: 'job:queued',
  jobStarted: 'job:started',
  jobProgress: 'job:progress',
  jobDone: 'job:done',
  jobFailed: 'job:failed',
  jobCancelled: 'job:cancelled',
  error: 'error',
} as const;

// ---------------------------------------------------------------------------------------------
// Client → server

export const HelloSchema = z.object({
  protocolVersion: z.number().int(),
  client: z.string().max(100).optional(),
});

/** Job kinds a client may start, each with its own params. The engine has more (test-only) kinds. */
export const JobStartSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('tensor-selftest'),
    params: z.object({
      steps: z.number().int().min(1).max(200).default(5),
      delayMs: z.number().int().min(0).max(1000).default(0),
    }).default({ steps: 5, delayMs: 0 }),
    /** Echoed back on `job:queued` so the client can match its request to the job id. */
    requestId: z.string().max(100).optional(),
  }),
  z.object({
    kind: z.literal('generate'),
    params: z.lazy(() => GenerateParamsSchema),
    requestId: z.string().max(100).optional(),
  }),
  z.object({
    kind: z.literal('health'),
    params: z.object({}).default({}),
    requestId: z.string().max(100).optional(),
  }),
]);

export const JobCancelSchema = z.object({ jobId: z.string().min(1).max(100) });

// ---------------------------------------------------------------------------------------------
// Server → client

export const BackendReportSchema = z.object({
  name: z.string(),
  tfBackend: z.string(),
  reason: z.string(),
  skipped: z.array(z.object({ name: z.string(), why: z.string() })),
  threads: z.number().optional(),
});

export const HealthReportSchema = z.object({
  /** True when the studio can compute: a tfjs backend started and the data directory is writable. */
  ok: z.boolean(),
  /** Things a person should fix or know, in words ("no models installed"). */
  problems: z.array(z.string()),
  protocolVersion: z.number(),
  version: z.string(),
  checkedAt: z.string(),
  node: z.object({ version: z.string(), platform: z.string(), arch: z.string() }),
  /** Measured inside an engine worker: the thread that computes. */
  engine: z.object({
    checkedAt: z.string().optional(),
    threadId: z.number().optional(),
    tfjs: z.object({ version: z.string(), backend: BackendReportSchema.nullable(), error: z.string().optional() }).optional(),
    onnx: z.object({
      available: z.boolean(),
      version: z.string().optional(),
      backends: z.array(z.object({ name: z.string(), bundled: z.boolean() })).optional(),
      error: z.string().optional(),
    }).optional(),
    models: z.object({
      registry: z.boolean(),
      dir: z.string().optional(),
      installed: z.array(z.object({
        id: z.string(),
        family: z.string().optional(),
        bundled: z.boolean().optional(),
        verified: z.boolean(),
        problem: z.string().optional(),
      })),
      available: z.array(z.string()).optional(),
      error: z.string().optional(),
    }).optional(),
    error: z.string().optional(),
  }),
  data: z.object({
    dir: z.string(),
    exists: z.boolean(),
    writable: z.boolean(),
    freeBytes: z.number().nullable(),
    totalBytes: z.number().nullable(),
    error: z.string().optional(),
  }),
  jobs: z.object({
    workers: z.number(),
    ready: z.number(),
    busy: z.number(),
    queued: z.number(),
    queueLimit: z.number(),
    replaced: z.number(),
  }),
});
export type HealthReport = z.infer<typeof HealthReportSchema>;

export const ServerHelloSchema = z.object({ protocolVersion: z.number(), version: z.string() });
export type ServerHello = z.infer<typeof ServerHelloSchema>;

export interface JobError {
  code: string;
  message: string;
  field?: string;
}

export interface ServerToClient {
  [ServerEvent.hello]: (p: ServerHello) => void;
  [ServerEvent.healthReport]: (p: HealthReport) => void;
  [ServerEvent.jobQueued]: (p: { jobId: string; kind: string; position: number; requestId?: string }) => void;
  [ServerEvent.jobStarted]: (p: { jobId: string }) => void;
  [ServerEvent.jobProgress]: (p: { jobId: string; data: unknown }) => void;
  [ServerEvent.jobDone]: (p: { jobId: string; result: unknown }) => void;
  [ServerEvent.jobFailed]: (p: { jobId: string; error: JobError; requestId?: string }) => void;
  [ServerEvent.jobCancelled]: (p: { jobId: string }) => void;
  [ServerEvent.error]: (p: ProtocolError) => void;
}

export interface ClientToServer {
  [ClientEvent.hello]: (p: z.input<typeof HelloSchema>) => void;
  [ClientEvent.healthGet]: () => void;
  [ClientEvent.jobStart]: (p: z.input<typeof JobStartSchema>) => void;
  [ClientEvent.jobCancel]: (p: z.input<typeof JobCancelSchema>) => void;
}

/** Sent as `error` when a payload does not validate; `field` is a dotted path ("params.steps"). */
export interface ProtocolError {
  event: string;
  field: string;
  message: string;
}

/**
 * Parse a payload; on failure return the first problem as a ProtocolError naming the field.
 *
 * @example
 * const r = parsePayload(JobStartSchema, 'job:start', raw);
 * if (!r.ok) socket.emit('error', r.error);
 */
export function parsePayload<S extends z.ZodType>(schema: S, event: string, raw: unknown):
  { ok: true; value: z.output<S> } | { ok: false; error: ProtocolError } {
  const r = schema.safeParse(raw);
  if (r.success) return { ok: true, value: r.data };
  const issue = r.error.issues[0]!;
  const field = issue.path.length ? issue.path.map(String).join('.') : '(payload)';
  return { ok: false, error: { event, field, message: `${event}: ${field}: ${issue.message}` } };
}

// ---------------------------------------------------------------------------------------------
// Generate (VQGAN+CLIP): the form's parameters, progress, results and the gallery

type Limited = keyof typeof GENERATE_LIMITS;

/** A number in GENERATE_LIMITS' range, with the engine's wording when it is not. */
function limited(name: Limited) {
  const l = GENERATE_LIMITS[name];
  const error = (iss: { input?: unknown }) => `The \`${name}\` option ${rangeText(name)}, got ${JSON.stringify(iss.input) ?? 'nothing'}`;
  const n = z.number({ error });
  return (l.integer ? n.int({ error }) : n).min(l.min, { error }).max(l.max, { error });
}

/** Ids the server gave an upload (`POST /api/uploads`). */
export const UploadIdSchema = z.string().regex(/^[0-9a-f-]{36}$/, { error: 'not an upload id; upload the image first' });
/** Registry ids only (never a path). */
const ModelIdSchema = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,99}$/, { error: 'must be a model id such as demo-clip' });

export const GenerateParamsSchema = z.object({
  prompt: z.string({ error: 'The `prompt` must be text' })
    .refine((s) => s.trim().length > 0, { error: 'The `prompt` is empty: describe the picture, e.g. "a red circle on a blue background"' })
    .refine((s) => s.length <= PROMPT_MAX_LENGTH, { error: (iss) => `The \`prompt\` must be at most ${PROMPT_MAX_LENGTH} characters, got ${String(iss.input).length}` }),
  imagePrompts: z.array(z.object({ upload: UploadIdSchema, weight: limited('imageWeight').default(1) }))
    .max(MAX_IMAGE_PROMPTS, { error: `At most ${MAX_IMAGE_PROMPTS} image prompts` }).default([]),
  initImage: UploadIdSchema.optional(),
  initStrength: limited('initStrength').optional(),
  size: limited('size').optional(),
  steps: limited('steps').optional(),
  lr: limited('lr').optional(),
  seed: limited('seed').optional(),
  cutn: limited('cutn').optional(),
  cutPow: limited('cutPow').optional(),
  augment: z.boolean({ error: 'The `augment` option must be true or false' }).optional(),
  start: z.enum(GENERATE_STARTS, { error: `The \`start\` option must be one of ${GENERATE_STARTS.join(', ')}` }).optional(),
  previewEvery: limited('previewEvery').optional(),
  clipModel: ModelIdSchema.optional(),
  vqganModel: ModelIdSchema.optional(),
});
export type GenerateParamsInput = z.input<typeof GenerateParamsSchema>;

/** `job:progress` data of a generate job. `preview` is PNG bytes (a Buffer on the wire; an ArrayBuffer in the browser). */
export interface GenerateProgressData {
  step: number;
  total: number;
  loss: number;
  elapsedMs: number;
  etaMs: number;
  preview?: ArrayBuffer | Uint8Array;
}

export const GalleryItemSchema = z.object({
  id: z.string(),
  createdAt: z.string(),
  prompt: z.string(),
  seed: z.number(),
  width: z.number(),
  height: z.number(),
  imageUrl: z.string(),
  animationUrl: z.string().nullable(),
  /** Every parameter (uploads by id), model ids and checksums, backend, timings. */
  recipe: z.record(z.string(), z.unknown()),
});
export type GalleryItem = z.infer<typeof GalleryItemSchema>;

/** `job:done` result of a generate job: the saved gallery item. */
export type GenerateDoneResult = GalleryItem;

/** `GET /api/generate/info`: what the form needs to know. */
export interface GenerateInfo {
  models: {
    clip: { id: string; bundled: boolean; reason: string } | null;
    vqgan: { id: string; bundled: boolean; reason: string; factor: number; resolution: number } | null;
    error?: string;
  };
  backend: string | null;
  defaults: Record<string, number | boolean>;
  limits: Record<string, { min: number; max: number; integer: boolean }>;
  promptMaxLength: number;
  /** The words the bundled demo CLIP knows, when it is the active model. */
  vocabulary: { shapes: string[]; colors: string[]; backgroundColors: string[] } | null;
}
