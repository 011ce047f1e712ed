/**
 * Captioning, the generation flow in reverse: CLIP reads the image against term lists
 * (interrogate), an LLM turns the best terms into candidate captions (propose), CLIP ranks
 * them (rank), the LLM varies the best ones and CLIP ranks again (refine), until the best
 * caption stops improving or the budget (rounds, candidates, tokens) is spent. Without an LLM,
 * or when it fails, the offline generator (compose.ts) writes the candidates and the result
 * says so.
 *
 * The image is embedded once; every ranking reuses that embedding, and the scorer caches text
 * embeddings, so re-ranking the growing pool each round costs only the new candidates.
 * Scores are CLIP's softmax over the whole pool with the model's logit scale; whether a round
 * improved is judged on the best caption's logit, which, unlike a softmax share, does not
 * shrink as the pool grows.
 *
 * @example
 * const scorer = await ClipScorer.open();
 * const result = await captionImage(scorer, png, { rounds: 2 }, { llm });
 * result.captions[0].text; // "a red circle on a blue background"
 */
import { readFile } from 'node:fs/promises';
import { CancelledError } from '../errors';
import type { ClipScorer } from '../scorer';
import { captionKey, composeDetailed, uniqueCaptions, varyCaptions, type ComposedCaption } from './compose';
import { LlmError, type CaptionLlm } from './llm';
import { LlmAnswerError, parseCandidates } from './parse';
import { validateCaptionOptions, type CaptionOptions } from './params';
import { proposeMessages, refineMessages } from './prompts';
import { allPrompts, supportingTerms, termSet, termsFromLogits, type TermScore } from './terms';

export type CaptionSource = 'llm' | 'offline';

/** One candidate, ranked against the image. */
export interface RankedCaption {
  text: string;
  /** CLIP's softmax probability over every candidate ranked so far. */
  score: number;
  /** CLIP's logit: exp(logit_scale) · cosine similarity. */
  logit: number;
  /** Over the model's 77 tokens: CLIP saw only the start. */
  truncated: boolean;
  /** The interrogated terms the caption uses, best first. */
  terms: { category: string; text: string; score: number }[];
  /** The round that proposed it (0: the first proposal). */
  round: number;
  source: CaptionSource;
}

/** One round: what was added and how the pool ranks after it. */
export interface CaptionRound {
  round: number;
  kind: 'propose' | 'refine';
  source: CaptionSource;
  /** Candidates new in this round. */
  added: string[];
  /** The pool's best captions after this round (up to 10), best first. */
  top: RankedCaption[];
  /** The best caption's logit rose this round (always true for round 0). */
  improved: boolean;
  /** LLM tokens spent so far. */
  tokens: number;
}

export type CaptionEvent =
  | { type: 'terms'; terms: TermScore[] }
  | { type: 'round'; round: CaptionRound }
  | { type: 'notice'; message: string };

export type StopReason = 'rounds' | 'converged' | 'no-new-candidates' | 'candidates' | 'tokens';

export interface CaptionResult {
  /** Every candidate, best first. */
  captions: RankedCaption[];
  terms: TermScore[];
  /** Who wrote the first candidates: the LLM, or the offline generator (no LLM, or it failed). */
  source: CaptionSource;
  rounds: CaptionRound[];
  /** What the user should know: no LLM configured, an LLM failure and the fallback, retries. */
  notices: string[];
  stopped: StopReason;
  model: { id: string; demo: boolean };
  usage: { llmCalls: number; tokens: number; candidates: number };
  elapsedMs: number;
}

export interface CaptionDeps {
  /** The LLM; without one the offline generator writes every candidate. */
  llm?: CaptionLlm;
  signal?: AbortSignal;
  onEvent?: (e: CaptionEvent) => void;
}

export type CaptionImage = Buffer | string | { name: string; data: Buffer };

/** The image's MIME type from its first bytes, for the LLM's data URL. */
function sniffMime(b: Buffer): string {
  if (b[0] === 0x89 && b[1] === 0x50) return 'image/png';
  if (b[0] === 0xff && b[1] === 0xd8) return 'image/jpeg';
  if (b.subarray(0, 4).toString('latin1') === 'RIFF' && b.subarray(8, 12).toString('latin1') === 'WEBP') return 'image/webp';
  if (b.subarray(0, 3).toString('latin1') === 'GIF') return 'image/gif';
  return 'application/octet-stream';
}

const TOP_IN_ROUND = 10;

/**
 * Caption one image. Options are validated first (InputError naming the option); `signal`
 * cancels between steps and aborts a pending LLM call (CancelledError).
 */
export async function captionImage(scorer: ClipScorer, image: CaptionImage, options: Partial<CaptionOptions> = {}, deps: CaptionDeps = {}): Promise<CaptionResult> {
  const t0 = performance.now();
  const opts = validateCaptionOptions(options);
  const { llm, signal } = deps;
  const emit = (e: CaptionEvent) => deps.onEvent?.(e);
  const notices: string[] = [];
  const notice = (message: string) => { notices.push(message); emit({ type: 'notice', message }); };
  const checkCancel = () => { if (signal?.aborted) throw new CancelledError(); };

  // Interrogate: one image embedding, reused for every ranking below.
  const embeds = await scorer.imageEmbeddings([image]);
  checkCancel();
  const set = termSet(scorer.model.demo);
  const prompts = allPrompts(set);
  const { embeds: promptEmbeds } = await scorer.textEmbeddings(prompts);
  const terms = termsFromLogits(set, scorer.logits(embeds, 1, promptEmbeds, prompts.length), opts.termsPerCategory);
  emit({ type: 'terms', terms });
  checkCancel();

  let imageForLlm: { mime: string; data: Buffer } | undefined;
  if (opts.sendImage && llm) {
    const data = typeof image === 'string' ? await readFile(image) : Buffer.isBuffer(image) ? image : image.data;
    imageForLlm = { mime: sniffMime(data), data };
  }

  let tokens = 0;
  let llmCalls = 0;
  let llmUsable = !!llm;
  const askLlm = async (messages: ReturnType<typeof proposeMessages>): Promise<string[] | undefined> => {
    if (!llm || !llmUsable) return undefined;
    llmCalls++;
    try {
      const answer = await llm.complete(messages, { ...(signal ? { signal } : {}), onRetry: notice });
      tokens += answer.tokens;
      return parseCandidates(answer.text);
    } catch (err) {
      if (err instanceof CancelledError) throw err;
      if (!(err instanceof LlmError || err instanceof LlmAnswerError)) throw err;
      llmUsable = false;
      notice(`${err.message} The offline generator writes the candidates instead.`);
      return undefined;
    }
  };

  // The pool: every distinct candidate, where it came from, ranked together.
  const pool: { text: string; round: number; source: CaptionSource }[] = [];
  const keys = new Set<string>();
  const add = (texts: readonly string[], round: number, source: CaptionSource): string[] => {
    const added: string[] = [];
    for (const text of uniqueCaptions(texts)) {
      if (pool.length >= opts.maxCandidates) break;
      const k = captionKey(text);
      if (keys.has(k)) continue;
      keys.add(k);
      pool.push({ text, round, source });
      added.push(text);
    }
    return added;
  };
  const rankPool = async (): Promise<RankedCaption[]> => {
    const ranked = (await scorer.rankMany({ embeds, n: 1 }, pool.map((p) => p.text)))[0]!;
    const origin = new Map(pool.map((p) => [p.text, p]));
    return ranked.map((r) => ({
      ...r, round: origin.get(r.text)!.round, source: origin.get(r.text)!.source,
      terms: supportingTerms(r.text, terms).map(({ category, text, score }) => ({ category, text, score })),
    }));
  };

  // Propose. Offline captions remember their template, so variations refill it.
  const composed = new Map<string, ComposedCaption>();
  let source: CaptionSource = 'offline';
  const fromLlm = await askLlm(proposeMessages({ terms, hint: set.llmHint, n: opts.candidates, ...(imageForLlm ? { image: imageForLlm } : {}) }));
  checkCancel();
  let added: string[];
  if (fromLlm?.length) {
    source = 'llm';
    added = add(fromLlm.slice(0, Math.max(opts.candidates, fromLlm.length)), 0, 'llm');
  } else {
    if (!llm) notice('No LLM is configured (OPENAI_BASE_URL, CAPTION_LLM_MODEL); the offline generator composed the candidates from the top terms.');
    const made = composeDetailed(set, terms).slice(0, opts.candidates);
    for (const c of made) composed.set(captionKey(c.text), c);
    added = add(made.map((c) => c.text), 0, 'offline');
  }
  let ranked = await rankPool();
  const rounds: CaptionRound[] = [{ round: 0, kind: 'propose', source, added, top: ranked.slice(0, TOP_IN_ROUND), improved: true, tokens }];
  emit({ type: 'round', round: rounds[0]! });

  // Refine.
  let stopped: StopReason = 'rounds';
  for (let r = 1; r <= opts.rounds; r++) {
    checkCancel();
    if (pool.length >= opts.maxCandidates) { stopped = 'candidates'; break; }
    if (llm && llmUsable && tokens >= opts.maxTokens) { stopped = 'tokens'; break; }
    const best = ranked.slice(0, opts.topK);
    const want = Math.min(opts.candidates, opts.maxCandidates - pool.length);
    let roundSource: CaptionSource = 'llm';
    let proposals = await askLlm(refineMessages({ terms, hint: set.llmHint, n: want, best, ...(imageForLlm ? { image: imageForLlm } : {}) }));
    checkCancel();
    if (!proposals) {
      roundSource = 'offline';
      proposals = varyCaptions(best.map((b) => b.text), terms, want, keys, composed);
    }
    const newOnes = add(proposals.slice(0, want), r, roundSource);
    if (!newOnes.length) { stopped = 'no-new-candidates'; break; }
    const previousBest = ranked[0]!.logit;
    ranked = await rankPool();
    const improved = ranked[0]!.logit > previousBest + 1e-6;
    const round: CaptionRound = { round: r, kind: 'refine', source: roundSource, added: newOnes, top: ranked.slice(0, TOP_IN_ROUND), improved, tokens };
    rounds.push(round);
    emit({ type: 'round', round });
    if (!improved) { stopped = 'converged'; break; }
  }

  return {
    captions: ranked, terms, source, rounds, notices, stopped,
    model: { id: scorer.model.id, demo: scorer.model.demo },
    usage: { llmCalls, tokens, candidates: pool.length },
    elapsedMs: performance.now() - t0,
  };
}
