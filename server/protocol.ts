/**
 * The studio's wire protocol: one file, shared by the server (which validates every incoming
 * payload with these schemas before anything else touches it) and the app (which imports the
 * inferred types only). Event names say their direction: `job:start` comes from the client,
 * `job:progress` from the server.
 */
import { z } from 'zod';
import { GENERATE_LIMITS, GENERATE_STARTS, MAX_IMAGE_PROMPTS, PROMPT_MAX_LENGTH, rangeText } from '../engine/index';
import { CAPTION_LIMITS, captionRangeText, type CaptionLimitName } from '../engine/index';

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
  device: z.string().optional(),
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
      cuda: z.boolean().optional(),
      provider: z.string().optional(),
      threads: z.number().optional(),
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

// =============================================================================================
// Play: the drawing game judged by CLIP (server/game/). Everything the game sends or accepts is
// in this section. The interfaces ClientToServer and ServerToClient above are extended by
// declaration merging below, so the game's events are typed on the same sockets.
// =============================================================================================

/** The game's limits; the schemas below and the room (server/game/room.ts) use these. */
export const PLAY_LIMITS = {
  nicknameMax: 20,
  players: 12,
  spectators: 32,
  rounds: { min: 1, max: 10, default: 3 },
  seconds: { min: 5, max: 300, default: 60 },
  /** A drawing is a PNG of at most this side (width and height) and this many bytes. */
  drawingMaxSide: 512,
  drawingMaxBytes: 300 * 1024,
  guesses: 5,
  /** A player who drops keeps their seat (and score) this long. */
  reconnectMs: 60_000,
  /** Room codes: this many characters of PLAY_CODE_ALPHABET (≈ 49 bits). */
  codeLength: 10,
} as const;

/** Room-code characters: digits and capitals without the look-alikes 0/O, 1/I/L. */
export const PLAY_CODE_ALPHABET = '23456789ABCDEFGHJKMNPQRSTUVWXYZ';

/** Events a play client sends. */
export const PlayClientEvent = {
  create: 'play:create',
  join: 'play:join',
  leave: 'play:leave',
  settings: 'play:settings',
  start: 'play:start',
  next: 'play:next',
  draw: 'play:draw',
  submit: 'play:submit',
  hallOfFameGet: 'play:hall-of-fame:get',
} as const;

/** Events the server sends to play clients. */
export const PlayServerEvent = {
  joined: 'play:joined',
  left: 'play:left',
  state: 'play:state',
  bell: 'play:bell',
  guesses: 'play:guesses',
  reveal: 'play:reveal',
  podium: 'play:podium',
  hallOfFame: 'play:hall-of-fame',
  error: 'play:error',
} as const;

const playNickname = z.string({ error: 'The `nickname` must be text' })
  .transform((s) => s.trim().replace(/\s+/g, ' '))
  .refine((s) => s.length >= 1, { error: 'The `nickname` is empty: pick a name of 1–20 characters' })
  .refine((s) => [...s].length <= PLAY_LIMITS.nicknameMax, { error: (iss) => `The \`nickname\` must be at most ${PLAY_LIMITS.nicknameMax} characters, got ${[...String(iss.input).trim()].length}` })
  // eslint-disable-next-line no-control-regex
  .refine((s) => !/[<>&"'`\\\u0000-\u001f\u007f]/.test(s), { error: 'The `nickname` may not contain markup or control characters (< > & " \' ` \\)' });

export const PlayCodeSchema = z.string({ error: 'The room `code` must be text' })
  .transform((s) => s.trim().toUpperCase())
  .refine((s) => s.length === PLAY_LIMITS.codeLength && [...s].every((c) => PLAY_CODE_ALPHABET.includes(c)), {
    error: `The room \`code\` is ${PLAY_LIMITS.codeLength} letters and digits, as in the share link`,
  });

/** The token a browser keeps to get its seat back after a reload or a dropped connection. */
const PlayTokenSchema = z.string().regex(/^[A-Za-z0-9_-]{16,64}$/, { error: 'not a seat token from this server' });

const playInt = (name: string, l: { min: number; max: number }) => {
  const error = (iss: { input?: unknown }) => `The \`${name}\` setting must be an integer between ${l.min} and ${l.max}, got ${JSON.stringify(iss.input) ?? 'nothing'}`;
  return z.number({ error }).int({ error }).min(l.min, { error }).max(l.max, { error });
};

export const PlaySettingsSchema = z.object({
  rounds: playInt('rounds', PLAY_LIMITS.rounds).optional(),
  seconds: playInt('seconds', PLAY_LIMITS.seconds).optional(),
  pack: z.string({ error: 'The `pack` must be a prompt pack id' }).regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, { error: 'The `pack` must be a prompt pack id such as demo-doodles' }).optional(),
});
export type PlaySettingsInput = z.input<typeof PlaySettingsSchema>;

export const PlayCreateSchema = z.object({ nickname: playNickname, settings: PlaySettingsSchema.optional() });
export const PlayJoinSchema = z.object({
  code: PlayCodeSchema,
  nickname: playNickname,
  /** Watch instead of drawing. */
  spectator: z.boolean({ error: 'The `spectator` flag must be true or false' }).default(false),
  /** The seat token from an earlier `play:joined`, to get that seat back. */
  token: PlayTokenSchema.optional(),
});

/** PNG bytes (a Buffer on the server; the client sends an ArrayBuffer or Uint8Array). */
const PlayPngSchema = z.custom<Uint8Array>((v) => v instanceof Uint8Array, { error: 'The `png` must be the drawing as PNG bytes (binary)' })
  .refine((b) => b.byteLength <= PLAY_LIMITS.drawingMaxBytes, {
    error: (iss) => `The drawing is ${(iss.input as Uint8Array).byteLength} bytes, over the limit of ${PLAY_LIMITS.drawingMaxBytes} (300 KB)`,
  });

/** A drawing for round `round`: live (`play:draw`, at most once a second) or final (`play:submit`). */
export const PlayDrawingSchema = z.object({
  round: z.number({ error: 'The `round` must be the round number' }).int({ error: 'The `round` must be an integer' }).min(1, { error: 'The `round` must be 1 or more' }),
  png: PlayPngSchema,
});
export const PlayEmptySchema = z.object({}).optional();
export const PlayHallOfFameGetSchema = z.object({
  pack: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, { error: 'The `pack` must be a prompt pack id' }).optional(),
}).optional();

// ---- Server → client payloads (plain data; the room's public view) ----

export type PlayPhase = 'lobby' | 'drawing' | 'collecting' | 'judging' | 'reveal' | 'podium';

export interface PlayPackInfo { id: string; title: string; prompts: number; model: string }

export interface PlaySeatView {
  seat: string;
  nickname: string;
  role: 'player' | 'spectator';
  host: boolean;
  score: number;
  connected: boolean;
  /** In the drawing phases: a final drawing has arrived this round. */
  submitted: boolean;
}

export interface PlayRoomView {
  code: string;
  phase: PlayPhase;
  settings: { rounds: number; seconds: number; pack: string };
  packs: PlayPackInfo[];
  /** The round being played (1-based), 0 before the first. */
  round: number;
  /** The round's prompt as shown to players ("house"); null outside a round. */
  prompt: string | null;
  /** Milliseconds left in the current phase when this was sent (the server owns the clock). */
  remainingMs: number | null;
  seats: PlaySeatView[];
}

export interface PlayGuess { label: string; probability: number }

export interface PlayGuesses {
  round: number;
  seat: string;
  nickname: string;
  guesses: PlayGuess[];
  /** The drawing these guesses are for (a data: URL), sent to spectators. */
  image?: string;
  /** Server time spent scoring this canvas, ms. */
  scoringMs: number;
}

export interface PlayRevealEntry {
  seat: string;
  nickname: string;
  /** data: URL of the re-encoded PNG; null when there was no drawing or moderation hid it. */
  image: string | null;
  /** CLIP's probability of the prompt among the pack's prompts (after any penalty), × 100. */
  clipScore: number;
  /** Rank bonus for the round. */
  bonus: number;
  /** clipScore + bonus, added to the total. */
  points: number;
  rank: number | null;
  guesses: PlayGuess[];
  /** Set when a penalty prompt (e.g. the prompt written as words) outranked the prompt. */
  penalty: { prompt: string; factor: number } | null;
  /** Set when a moderation prompt matched: the drawing is hidden and scores 0. */
  moderated: boolean;
  /** Why the entry scored 0 without being judged ("no drawing", "empty canvas"). */
  note: string | null;
}

export interface PlayLeaderboardRow { seat: string; nickname: string; score: number; rank: number }

export interface PlayReveal {
  round: number;
  rounds: number;
  prompt: string;
  entries: PlayRevealEntry[];
  leaderboard: PlayLeaderboardRow[];
  /** Set when the judge failed and the round scored nothing. */
  error?: string;
}

export interface PlayPodium { leaderboard: PlayLeaderboardRow[]; rounds: number }

export interface PlayHallOfFameEntry { id: string; prompt: string; nickname: string; score: number; image: string; createdAt: string }
export interface PlayHallOfFame { pack: string; prompts: { prompt: string; entries: PlayHallOfFameEntry[] }[] }

/** To the joining client only: its seat and the token to keep (localStorage) for getting the seat back. */
export interface PlayJoined { code: string; seat: string; token: string; role: 'player' | 'spectator'; room: PlayRoomView }

/** Game errors and invalid payloads; `field` names the bad field when there is one. */
export interface PlayError { event: string; code: string; field?: string; message: string }

export interface ServerToClient {
  [PlayServerEvent.joined]: (p: PlayJoined) => void;
  [PlayServerEvent.left]: (p: { reason: string }) => void;
  [PlayServerEvent.state]: (p: PlayRoomView) => void;
  [PlayServerEvent.bell]: (p: { round: number }) => void;
  [PlayServerEvent.guesses]: (p: PlayGuesses) => void;
  [PlayServerEvent.reveal]: (p: PlayReveal) => void;
  [PlayServerEvent.podium]: (p: PlayPodium) => void;
  [PlayServerEvent.hallOfFame]: (p: PlayHallOfFame) => void;
  [PlayServerEvent.error]: (p: PlayError) => void;
}

export interface ClientToServer {
  [PlayClientEvent.create]: (p: z.input<typeof PlayCreateSchema>) => void;
  [PlayClientEvent.join]: (p: z.input<typeof PlayJoinSchema>) => void;
  [PlayClientEvent.leave]: () => void;
  [PlayClientEvent.settings]: (p: PlaySettingsInput) => void;
  [PlayClientEvent.start]: () => void;
  [PlayClientEvent.next]: () => void;
  [PlayClientEvent.draw]: (p: { round: number; png: ArrayBuffer | Uint8Array }) => void;
  [PlayClientEvent.submit]: (p: { round: number; png: ArrayBuffer | Uint8Array }) => void;
  [PlayClientEvent.hallOfFameGet]: (p?: z.input<typeof PlayHallOfFameGetSchema>) => void;
}

// =============================================================================================
// Caption: an uploaded image in, captions out, rounds streamed as they are ranked.
//   caption:info → caption:info (LLM configured?, active model, limits)
//   caption:start {upload, rounds?, candidates?, useLlm?, sendImage?, requestId?}
//     → caption:queued, caption:started, caption:terms, caption:notice*, caption:round+, caption:done
//       | caption:failed (error.field names the bad field) | caption:cancelled
//   caption:cancel {jobId}
// An invalid payload gets the studio's `error` event naming the field (event: 'caption:start').

export const CaptionClientEvent = {
  info: 'caption:info',
  start: 'caption:start',
  cancel: 'caption:cancel',
} as const;

export const CaptionServerEvent = {
  info: 'caption:info',
  queued: 'caption:queued',
  started: 'caption:started',
  terms: 'caption:terms',
  notice: 'caption:notice',
  round: 'caption:round',
  done: 'caption:done',
  failed: 'caption:failed',
  cancelled: 'caption:cancelled',
} as const;

/** An integer in CAPTION_LIMITS' range, with the engine's wording when it is not. */
function captionLimited(name: CaptionLimitName) {
  const l = CAPTION_LIMITS[name];
  const error = (iss: { input?: unknown }) => `The \`${name}\` option ${captionRangeText(name)}, got ${JSON.stringify(iss.input) ?? 'nothing'}`;
  return z.number({ error }).int({ error }).min(l.min, { error }).max(l.max, { error });
}

export const CaptionStartSchema = z.object({
  /** The image, uploaded first (POST /api/uploads?field=image). */
  upload: UploadIdSchema,
  rounds: captionLimited('rounds').optional(),
  candidates: captionLimited('candidates').optional(),
  /** Ask the configured LLM (default true); false: the offline generator only. */
  useLlm: z.boolean({ error: 'The `useLlm` option must be true or false' }).default(true),
  /** Send the image itself to the LLM (for models that accept images). */
  sendImage: z.boolean({ error: 'The `sendImage` option must be true or false' }).default(false),
  requestId: z.string().max(100).optional(),
});
export type CaptionStartInput = z.input<typeof CaptionStartSchema>;

export const CaptionCancelSchema = z.object({ jobId: z.string().min(1).max(100) });

/** A term CLIP read in the image: its category, how it reads, its softmax within the category. */
export interface CaptionTermView { category: string; text: string; score: number }

export interface CaptionView {
  text: string;
  /** CLIP's softmax over every candidate ranked so far. */
  score: number;
  logit: number;
  /** Over the model's 77 tokens: ranked on its start only. */
  truncated: boolean;
  /** The interrogated terms the caption uses. */
  terms: CaptionTermView[];
  round: number;
  source: 'llm' | 'offline';
}

export interface CaptionRoundView {
  round: number;
  kind: 'propose' | 'refine';
  source: 'llm' | 'offline';
  added: string[];
  top: CaptionView[];
  improved: boolean;
  tokens: number;
}

export interface CaptionResultView {
  captions: CaptionView[];
  terms: CaptionTermView[];
  source: 'llm' | 'offline';
  rounds: CaptionRoundView[];
  notices: string[];
  stopped: string;
  model: { id: string; demo: boolean };
  usage: { llmCalls: number; tokens: number; candidates: number };
  elapsedMs: number;
}

export interface CaptionInfo {
  /** The configured LLM (model name and host; never the key), or null: offline generator only. */
  llm: { model: string; host: string } | null;
  /** The CLIP model that ranks, or null with `error` when none opens. */
  model: { id: string; demo: boolean } | null;
  error?: string;
  limits: Record<string, { min: number; max: number; default: number }>;
  /** Jobs running and waiting, and how many may wait. */
  queue: { running: number; waiting: number; limit: number };
}

export interface CaptionFailed { jobId: string; error: JobError; requestId?: string }

export interface ServerToClient {
  [CaptionServerEvent.info]: (p: CaptionInfo) => void;
  [CaptionServerEvent.queued]: (p: { jobId: string; position: number; requestId?: string }) => void;
  [CaptionServerEvent.started]: (p: { jobId: string }) => void;
  [CaptionServerEvent.terms]: (p: { jobId: string; terms: CaptionTermView[] }) => void;
  [CaptionServerEvent.notice]: (p: { jobId: string; message: string }) => void;
  [CaptionServerEvent.round]: (p: { jobId: string; round: CaptionRoundView }) => void;
  [CaptionServerEvent.done]: (p: { jobId: string; result: CaptionResultView }) => void;
  [CaptionServerEvent.failed]: (p: CaptionFailed) => void;
  [CaptionServerEvent.cancelled]: (p: { jobId: string }) => void;
}

export interface ClientToServer {
  [CaptionClientEvent.info]: () => void;
  [CaptionClientEvent.start]: (p: CaptionStartInput) => void;
  [CaptionClientEvent.cancel]: (p: z.input<typeof CaptionCancelSchema>) => void;
}
// ============================================================================ end of Caption
