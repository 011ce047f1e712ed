/**
 * The options of a caption run: defaults, allowed ranges, and one validator that names the
 * option and its range when a value is wrong. Shared by the server's protocol, the CLI and the
 * pipeline, so all three refuse the same values with the same words.
 */
import { InputError } from '../errors';

interface NumberLimit { min: number; max: number; default: number }

/** Allowed ranges and defaults. */
export const CAPTION_LIMITS = {
  /** Refinement rounds after the first proposal (0: propose and rank only). */
  rounds: { min: 0, max: 8, default: 2 },
  /** Candidates asked for per proposal or refinement round. */
  candidates: { min: 2, max: 64, default: 12 },
  /** How many of the best captions each refinement round varies. */
  topK: { min: 1, max: 8, default: 3 },
  /** Terms kept per category from the interrogation. */
  termsPerCategory: { min: 1, max: 10, default: 3 },
  /** Total LLM tokens (prompt + answer) a run may spend; rounds stop when it is reached. */
  maxTokens: { min: 0, max: 200_000, default: 6000 },
  /** Total distinct candidates a run may rank. */
  maxCandidates: { min: 2, max: 512, default: 96 },
} as const satisfies Record<string, NumberLimit>;

export type CaptionLimitName = keyof typeof CAPTION_LIMITS;

export interface CaptionOptions {
  rounds: number;
  candidates: number;
  topK: number;
  termsPerCategory: number;
  maxTokens: number;
  maxCandidates: number;
  /** Send the image itself to the LLM (for models that accept images). */
  sendImage: boolean;
}

/** "must be an integer between 0 and 8" for a limit. */
export function captionRangeText(name: CaptionLimitName): string {
  const l = CAPTION_LIMITS[name];
  return `must be an integer between ${l.min} and ${l.max}`;
}

/**
 * Fill in defaults and check every option; throws InputError naming the first bad one.
 *
 * @example
 * validateCaptionOptions({ rounds: 3 });   // { rounds: 3, candidates: 12, … }
 * validateCaptionOptions({ rounds: 99 });  // InputError: The `rounds` option must be an integer between 0 and 8, got 99
 */
export function validateCaptionOptions(raw: Partial<Record<keyof CaptionOptions, unknown>> = {}): CaptionOptions {
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(CAPTION_LIMITS) as CaptionLimitName[]) {
    const v = raw[name];
    if (v === undefined) { out[name] = CAPTION_LIMITS[name].default; continue; }
    const l = CAPTION_LIMITS[name];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < l.min || v > l.max) {
      throw new InputError(name, `The \`${name}\` option ${captionRangeText(name)}, got ${JSON.stringify(v) ?? String(v)}`);
    }
    out[name] = v;
  }
  const sendImage = raw.sendImage ?? false;
  if (typeof sendImage !== 'boolean') throw new InputError('sendImage', `The \`sendImage\` option must be true or false, got ${JSON.stringify(sendImage)}`);
  out.sendImage = sendImage;
  return out as unknown as CaptionOptions;
}
