/**
 * The caption LLM: chat completions on any OpenAI-compatible endpoint through the `openai`
 * package (this is the engine's only importer of it). Our own retry loop, not the package's,
 * so each retry is reported to the run (a notice the user sees): 429 and 5xx answers and lost
 * connections are retried with exponential backoff and jitter (honouring Retry-After up to a
 * cap); every call has its own timeout, and a timeout is not retried (a slow endpoint stays
 * slow while the user waits; the pipeline falls back to the offline generator instead).
 *
 * The API key goes only into the Authorization header: error messages are written here from
 * the status and the endpoint's host, never from request headers, and the package's logger is off.
 *
 * @example
 * const llm = new CaptionLlm({ baseUrl: 'http://localhost:11434/v1', apiKey: 'k', model: 'llama3.2' });
 * const { text, tokens } = await llm.complete([{ role: 'user', content: 'Say hi' }]);
 */
import OpenAI from 'openai';
import { ClipStudioError, CancelledError } from '../errors';

/** An LLM call failed: HTTP status, connection, timeout, or retries used up. */
export class LlmError extends ClipStudioError {
  override readonly code: string = 'LLM';
  constructor(message: string, readonly status?: number, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** An LLM call took longer than its timeout. */
export class LlmTimeoutError extends LlmError {
  override readonly code = 'LLM_TIMEOUT';
}

export interface CaptionLlmOptions {
  /** OpenAI-compatible endpoint, e.g. http://localhost:11434/v1; default OpenAI's. */
  baseUrl?: string;
  /** Sent as the Bearer token; endpoints that need none may leave it out. */
  apiKey?: string;
  model: string;
  /** Per call, in ms (default 30 s). */
  timeoutMs?: number;
  /** Retries after a 429, a 5xx or a lost connection (default 3). */
  maxRetries?: number;
  /** First backoff in ms, doubled per retry, ±25 % jitter (default 500). */
  backoffMs?: number;
  /** Longest wait between retries, Retry-After included (default 10 s). */
  maxBackoffMs?: number;
  /** Answer length asked of the model, in tokens (default 600). */
  maxAnswerTokens?: number;
  /** Waits between retries (tests pass a recording one); default a timer that the signal cancels. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

export type ChatContent = string | ({ type: 'text'; text: string } | { type: 'image_url'; image_url: { url: string } })[];
export interface ChatMessage { role: 'system' | 'user' | 'assistant'; content: ChatContent }

export interface LlmAnswer {
  text: string;
  /** Tokens the call used (prompt + answer), from the endpoint's usage or estimated (4 characters a token). */
  tokens: number;
  /** How many attempts it took. */
  attempts: number;
}

export interface CompleteOptions {
  signal?: AbortSignal;
  /** Told about each retry before its wait ("429 from localhost; retry 1 of 3 in 0.5 s"). */
  onRetry?: (message: string) => void;
  maxAnswerTokens?: number;
}

function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new CancelledError());
    const timer = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve(); }, ms);
    const onAbort = () => { clearTimeout(timer); reject(new CancelledError()); };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

const estimateTokens = (chars: number) => Math.ceil(chars / 4);

function contentChars(messages: readonly ChatMessage[]): number {
  return messages.reduce((n, m) => n + (typeof m.content === 'string' ? m.content.length
    : m.content.reduce((k, p) => k + (p.type === 'text' ? p.text.length : 1000), 0)), 0);
}

export class CaptionLlm {
  private readonly client: OpenAI;
  readonly model: string;
  /** The endpoint's host, for messages (never the key). */
  readonly host: string;
  private readonly timeoutMs: number;
  private readonly maxRetries: number;
  private readonly backoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly maxAnswerTokens: number;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;

  constructor(opts: CaptionLlmOptions) {
    if (!opts.model) throw new LlmError('No LLM model is configured (CAPTION_LLM_MODEL).');
    this.model = opts.model;
    this.host = opts.baseUrl ? new URL(opts.baseUrl).host : 'api.openai.com';
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.maxRetries = opts.maxRetries ?? 3;
    this.backoffMs = opts.backoffMs ?? 500;
    this.maxBackoffMs = opts.maxBackoffMs ?? 10_000;
    this.maxAnswerTokens = opts.maxAnswerTokens ?? 600;
    this.sleep = opts.sleep ?? abortableSleep;
    this.client = new OpenAI({
      // Local endpoints (ollama, llama.cpp, vLLM) take any key; the package insists on one.
      apiKey: opts.apiKey || 'no-key',
      ...(opts.baseUrl ? { baseURL: opts.baseUrl } : {}),
      maxRetries: 0,
      timeout: this.timeoutMs,
      logLevel: 'off',
    });
  }

  /** The wait before retry `attempt` (1-based): Retry-After when the endpoint sent one, else exponential with jitter. */
  private backoff(attempt: number, retryAfter: string | null | undefined): number {
    const seconds = retryAfter !== null && retryAfter !== undefined ? Number(retryAfter) : NaN;
    if (Number.isFinite(seconds) && seconds >= 0) return Math.min(this.maxBackoffMs, seconds * 1000);
    const base = this.backoffMs * 2 ** (attempt - 1);
    return Math.min(this.maxBackoffMs, base * (0.75 + Math.random() * 0.5));
  }

  /**
   * One chat completion, retried on 429/5xx/connection loss. Throws LlmTimeoutError after
   * `timeoutMs`, LlmError for other failures, CancelledError when `signal` aborts.
   */
  async complete(messages: readonly ChatMessage[], opts: CompleteOptions = {}): Promise<LlmAnswer> {
    for (let attempt = 1; ; attempt++) {
      if (opts.signal?.aborted) throw new CancelledError();
      try {
        const res = await this.client.chat.completions.create(
          { model: this.model, messages: messages as OpenAI.Chat.ChatCompletionMessageParam[], max_tokens: opts.maxAnswerTokens ?? this.maxAnswerTokens, temperature: 0.7 },
          { timeout: this.timeoutMs, ...(opts.signal ? { signal: opts.signal } : {}) },
        );
        if (!res || typeof res !== 'object' || !Array.isArray(res.choices)) {
          throw new LlmError(`The LLM at ${this.host} answered with something that is not a chat completion: ${JSON.stringify(String(typeof res === 'string' ? res : JSON.stringify(res)).slice(0, 80))}`);
        }
        const text = res.choices[0]?.message?.content ?? '';
        const tokens = res.usage?.total_tokens ?? estimateTokens(contentChars(messages) + text.length);
        return { text, tokens, attempts: attempt };
      } catch (err) {
        if (opts.signal?.aborted || err instanceof OpenAI.APIUserAbortError) throw new CancelledError();
        if (err instanceof LlmError) throw err;
        if (err instanceof OpenAI.APIConnectionTimeoutError) {
          throw new LlmTimeoutError(`The LLM at ${this.host} did not answer within ${(this.timeoutMs / 1000).toFixed(1)} s.`, undefined, { cause: err });
        }
        const status = err instanceof OpenAI.APIError ? err.status : undefined;
        const retryable = err instanceof OpenAI.APIConnectionError || status === 429 || (status !== undefined && status >= 500);
        const what = status !== undefined ? `HTTP ${status}` : err instanceof OpenAI.APIConnectionError ? 'a lost connection' : 'an error';
        if (!retryable) {
          const hint = status === 401 || status === 403 ? ' (check OPENAI_API_KEY)' : status === 404 ? ' (check OPENAI_BASE_URL and CAPTION_LLM_MODEL)' : '';
          throw new LlmError(`The LLM at ${this.host} answered with ${what}${hint}.`, status, { cause: err });
        }
        if (attempt > this.maxRetries) {
          throw new LlmError(`The LLM at ${this.host} answered with ${what} ${attempt} times; giving up.`, status, { cause: err });
        }
        const retryAfter = err instanceof OpenAI.APIError ? err.headers?.get('retry-after') : undefined;
        const wait = this.backoff(attempt, retryAfter);
        opts.onRetry?.(`${what} from the LLM at ${this.host}; retry ${attempt} of ${this.maxRetries} in ${(wait / 1000).toFixed(1)} s`);
        await this.sleep(wait, opts.signal);
      }
    }
  }
}
