/**
 * Caption jobs in the server process: the pipeline's CLIP work runs on onnxruntime (async, off
 * the event loop) through the server's one shared scorer, and its LLM calls are HTTP, so no
 * worker thread is needed. A small queue bounds the work: `concurrency` jobs run, `queueLimit`
 * wait, and more are refused with a BusyError saying how many are ahead. Each job can be
 * cancelled (its signal aborts a pending LLM call and stops between steps).
 *
 * The LLM comes from the configuration (OPENAI_BASE_URL, OPENAI_API_KEY, CAPTION_LLM_MODEL);
 * what the client learns about it is the model name and host, never the key.
 *
 * @example
 * const captions = new CaptionService({ config, scoring, uploads });
 * const { id } = captions.start({ upload, rounds: 2 }, (e) => socket.emit(…));
 */
import { randomUUID } from 'node:crypto';
import {
  BusyError, CancelledError, CAPTION_LIMITS, captionImage, CaptionLlm, ClipStudioError, InputError,
  type CaptionEvent, type CaptionResult, type ClipScorer, type RankedCaption, type TermScore,
} from '../../engine/index';
import type { StudioConfig } from '../config';
import type { CaptionInfo, CaptionResultView, CaptionRoundView, CaptionTermView, CaptionView, JobError } from '../protocol';
import type { Uploads } from '../studio/uploads';

export interface CaptionJobParams {
  upload: string;
  rounds?: number | undefined;
  candidates?: number | undefined;
  useLlm: boolean;
  sendImage: boolean;
}

export type CaptionJobEvent =
  | { type: 'queued'; jobId: string; position: number }
  | { type: 'started'; jobId: string }
  | { type: 'terms'; jobId: string; terms: CaptionTermView[] }
  | { type: 'notice'; jobId: string; message: string }
  | { type: 'round'; jobId: string; round: CaptionRoundView }
  | { type: 'done'; jobId: string; result: CaptionResultView }
  | { type: 'failed'; jobId: string; error: JobError }
  | { type: 'cancelled'; jobId: string };

export interface CaptionServiceOptions {
  config: StudioConfig;
  scoring: { get(): Promise<ClipScorer> };
  uploads: Pick<Uploads, 'path'>;
  /** Jobs running at once (default 1: CLIP work shares the scorer's threads). */
  concurrency?: number;
  /** Jobs that may wait (default 4). */
  queueLimit?: number;
  log?: (message: string) => void;
}

interface Job {
  id: string;
  params: CaptionJobParams;
  path: string;
  listener: (e: CaptionJobEvent) => void;
  abort: AbortController;
  started: boolean;
}

const termView = (t: Pick<TermScore, 'category' | 'text' | 'score'>): CaptionTermView => ({ category: t.category, text: t.text, score: t.score });
const captionView = (c: RankedCaption): CaptionView => ({
  text: c.text, score: c.score, logit: c.logit, truncated: c.truncated, terms: c.terms.map(termView), round: c.round, source: c.source,
});

/** The engine's result as plain wire data. */
export function toResultView(r: CaptionResult): CaptionResultView {
  return {
    captions: r.captions.map(captionView), terms: r.terms.map(termView), source: r.source,
    rounds: r.rounds.map((x) => ({ ...x, top: x.top.map(captionView) })), notices: r.notices, stopped: r.stopped,
    model: r.model, usage: r.usage, elapsedMs: r.elapsedMs,
  };
}

/** A client-facing error: typed engine errors keep their message and field; anything else is generic (and logged). */
export function toCaptionError(err: unknown, log: (m: string) => void): JobError {
  if (err instanceof InputError) return { code: err.code, message: err.message, field: err.field };
  if (err instanceof ClipStudioError) return { code: err.code, message: err.message };
  log(`[caption] ${(err as Error)?.stack ?? String(err)}`);
  return { code: 'INTERNAL', message: 'Captioning failed on the server; try again.' };
}

export class CaptionService {
  readonly llm: CaptionLlm | null;
  private readonly concurrency: number;
  private readonly queueLimit: number;
  private readonly log: (m: string) => void;
  private readonly running = new Map<string, Job>();
  private readonly waiting: Job[] = [];
  private closed = false;

  constructor(private readonly opts: CaptionServiceOptions) {
    const { llm } = opts.config;
    // Configured: a model, and somewhere to send it (a base URL, or OpenAI's own with a key).
    this.llm = llm.model && (llm.baseUrl || llm.apiKey)
      ? new CaptionLlm({ model: llm.model, ...(llm.timeoutMs ? { timeoutMs: llm.timeoutMs } : {}), ...(llm.baseUrl ? { baseUrl: llm.baseUrl } : {}), ...(llm.apiKey ? { apiKey: llm.apiKey } : {}) })
      : null;
    this.concurrency = opts.concurrency ?? 1;
    this.queueLimit = opts.queueLimit ?? 4;
    this.log = opts.log ?? ((m) => console.error(m));
  }

  /** What the page shows before an upload: the LLM (model and host), the ranking model, limits, the queue. */
  async info(): Promise<CaptionInfo> {
    const base = {
      llm: this.llm ? { model: this.llm.model, host: this.llm.host } : null,
      limits: Object.fromEntries(Object.entries(CAPTION_LIMITS).map(([k, v]) => [k, { ...v }])),
      queue: { running: this.running.size, waiting: this.waiting.length, limit: this.queueLimit },
    };
    try {
      const scorer = await this.opts.scoring.get();
      return { ...base, model: { id: scorer.model.id, demo: scorer.model.demo } };
    } catch (err) {
      return { ...base, model: null, error: err instanceof ClipStudioError ? err.message : 'The CLIP model could not be opened.' };
    }
  }

  /**
   * Queue a job for an uploaded image. Throws InputError (field `upload`) for an unknown
   * upload and BusyError when the queue is full; everything later arrives through `listener`.
   */
  start(params: CaptionJobParams, listener: (e: CaptionJobEvent) => void): { id: string } {
    if (this.closed) throw new BusyError(0);
    const path = this.opts.uploads.path(params.upload, 'upload');
    if (this.running.size >= this.concurrency && this.waiting.length >= this.queueLimit) throw new BusyError(this.running.size + this.waiting.length);
    const job: Job = { id: randomUUID(), params, path, listener, abort: new AbortController(), started: false };
    this.waiting.push(job);
    listener({ type: 'queued', jobId: job.id, position: this.running.size + this.waiting.length });
    this.pump();
    return { id: job.id };
  }

  /** Cancel a waiting or running job; false when there is no such job. */
  cancel(jobId: string): boolean {
    const i = this.waiting.findIndex((j) => j.id === jobId);
    if (i >= 0) {
      const [job] = this.waiting.splice(i, 1);
      job!.listener({ type: 'cancelled', jobId });
      return true;
    }
    const job = this.running.get(jobId);
    if (!job) return false;
    job.abort.abort();
    return true;
  }

  has(jobId: string): boolean {
    return this.running.has(jobId) || this.waiting.some((j) => j.id === jobId);
  }

  private pump(): void {
    while (!this.closed && this.running.size < this.concurrency && this.waiting.length) {
      const job = this.waiting.shift()!;
      this.running.set(job.id, job);
      void this.run(job).finally(() => {
        this.running.delete(job.id);
        this.pump();
      });
    }
  }

  private async run(job: Job): Promise<void> {
    const { id: jobId, listener } = job;
    job.started = true;
    listener({ type: 'started', jobId });
    const onEvent = (e: CaptionEvent) => {
      if (e.type === 'terms') listener({ type: 'terms', jobId, terms: e.terms.map(termView) });
      else if (e.type === 'notice') listener({ type: 'notice', jobId, message: e.message });
      else listener({ type: 'round', jobId, round: { ...e.round, top: e.round.top.map(captionView) } });
    };
    try {
      const scorer = await this.opts.scoring.get();
      if (job.abort.signal.aborted) throw new CancelledError();
      const { rounds, candidates, useLlm, sendImage } = job.params;
      const result = await captionImage(scorer, job.path, {
        ...(rounds !== undefined ? { rounds } : {}), ...(candidates !== undefined ? { candidates } : {}), sendImage,
      }, { ...(useLlm && this.llm ? { llm: this.llm } : {}), signal: job.abort.signal, onEvent });
      if (!useLlm && this.llm) result.notices.unshift('The LLM was not asked (offline generator only, as requested).');
      listener({ type: 'done', jobId, result: toResultView(result) });
    } catch (err) {
      if (err instanceof CancelledError) listener({ type: 'cancelled', jobId });
      else {
        // The upload is the only user input the pipeline decodes: name it as the field.
        const error = toCaptionError(err, this.log);
        listener({ type: 'failed', jobId, error: err instanceof InputError && err.field !== 'rounds' && err.field !== 'candidates' ? { ...error, field: 'upload' } : error });
      }
    }
  }

  /** Cancel everything; resolves when running jobs have stopped. */
  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.waiting.splice(0)) job.listener({ type: 'cancelled', jobId: job.id });
    const running = [...this.running.values()];
    for (const job of running) job.abort.abort();
    const deadline = Date.now() + 5000;
    while (this.running.size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  }
}
