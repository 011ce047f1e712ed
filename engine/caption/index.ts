/**
 * Captioning's public API (re-exported by engine/index.ts): interrogate, propose, rank, refine.
 */
export { captionImage, type CaptionResult, type CaptionRound, type CaptionEvent, type CaptionDeps, type CaptionImage, type CaptionSource, type RankedCaption, type StopReason } from './pipeline';
export { CaptionLlm, LlmError, LlmTimeoutError, type CaptionLlmOptions, type ChatMessage, type LlmAnswer } from './llm';
export { parseCandidates, LlmAnswerError, MAX_CAPTION_CHARS } from './parse';
export { validateCaptionOptions, captionRangeText, CAPTION_LIMITS, type CaptionOptions, type CaptionLimitName } from './params';
export { termSet, supportingTerms, type TermScore, type TermSet, type TermCategory } from './terms';
export { composeCaptions, varyCaptions, fixArticles, captionKey } from './compose';
export { proposeMessages, refineMessages, formatTerms } from './prompts';
