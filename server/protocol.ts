/**
 * The studio's wire protocol: one file, shared by the server (which validates every incoming
 * payload with these schemas before anything else touches it) and the app (which imports the
 * inferred types only). Event names say their direction: `job:start` comes from the client,
 * `job:progress` from the server.
 */
import { z } from 'zod';

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
