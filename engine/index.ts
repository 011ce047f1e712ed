/**
 * The engine's public API. server/, cli/ and bench/ import from here and nowhere deeper.
 * Each area adds its explicit named exports below.
 */
export * from './errors';
export { initBackend, tf, BACKEND_ORDER, type BackendName, type BackendReport } from './runtime/tf';
export { readSafetensors, writeSafetensors, type SafetensorsFile } from './io/safetensors';
export type { HostTensor, StateDict } from './io/host-tensor';
export { WorkerPool, JobFailedError, type JobEvent, type JobHandle, type PoolStats, type WorkerPoolOptions } from './runtime/worker-host';
export type { EngineHealth, OnnxHealth, SerializedError } from './runtime/worker';
export { readTorchCheckpoint, type TorchCheckpoint, type TorchReadOptions } from './io/torch';
export { readStateDict, checkStateDict, type LoadedWeights, type CheckOptions } from './io/weights';
export {
  loadClip, encodeImage, encodeText, logitsPerImage, normalizePixels,
  type Clip, type ClipSource, type ClipWeights,
} from './models/clip';
export {
  parseClipConfig, readClipConfig, CLIP_IMAGE_MEAN, CLIP_IMAGE_STD,
  type ClipConfig, type ClipTextConfig, type ClipVisionConfig, type ClipPreprocessConfig,
} from './models/config';
export { ClipTokenizer } from './models/tokenizer';
export {
  decodeImage, preprocessForClip, preprocessBatch, toClipPixels, encodePng, encodeWebp, chwToRgbBytes, resizeRgb, rasterizeSvg,
  type RgbImage, type ClipPreprocess, type DecodeOptions, type ResizeKernel,
} from './io/images';
export { downloadFile, hfResolveUrl, type DownloadOptions, type DownloadProgress, type DownloadResult, type ChecksumSource } from './io/download';
export {
  listModels, getModel, resolveModel, verifyModel, defaultModel, fetchModel, parseManifest, sha256File,
  type ModelEntry, type ModelStatus, type ModelFileState, type RegistryOptions, type ResolvedModel, type DefaultModel,
  type ModelVerification, type FileVerification, type FetchOptions, type FetchResult, type FetchedFile, type RecordedChecksum,
  type ModelManifest, type ModelFamily, type ModelFileSpec,
} from './models/registry';
export {
  loadVqgan, disposeVqgan, parseVqganConfig, expectedVqganKeys,
  vqganEncode, vqganQuantize, vqganDecode, vqganCodebookLookup, nchwToNhwc, nhwcToNchw,
  type VqganWeights, type VqganConfig, type VqganDdConfig, type VqganSource,
} from './models/vqgan';
export {
  straightThroughQuantize, clampWithGrad, sphericalDistance, parsePrompts, synthesizeImage, guidedLoss,
  type WeightedPrompt, type GuidedLossInputs,
} from './guide/loss';
export {
  worldVocabulary, renderSample, renderSampleSync, renderBatch,
  type WorldKind, type WorldLabels, type WorldSample, type RenderOptions, type WorldVocabulary, type ShapeLabel,
} from './demo/world';
export { createRng, sampleSeed, type Rng } from './demo/rng';
export {
  OrtClipEmbedder, similarityLogits,
  type OrtClipEmbedderOptions, type OrtClipInfo, type OrtClipStats,
} from './onnx/embedder';
export { LruCache, type TextEmbeddingStore } from './onnx/text-cache';
export { clipOnnxFiles, clipOnnxKey, type ClipOnnxFiles, type ClipOnnxCacheOptions } from './onnx/cache';
export { buildClipVisionOnnx, buildClipTextOnnx, clipVisionFlops, clipTextFlops, quantizeColumns, CLIP_ONNX_BUILDER_VERSION, type ClipOnnxPrecision } from './onnx/clip-onnx';
export { OnnxGraph, decodeModel, floatAttr, MS_DOMAIN, type OnnxDType, type AttrValue, type Dim } from './onnx/graph';
export { createOrtSession, probeOnnx, cudaInstalled, defaultThreads, providerChoice, PROVIDER_CHOICES, type OrtSession, type OrtValue, type OrtSessionOptions, type ExecutionProvider, type ProviderChoice } from './runtime/onnx';
export { classify, labelLogits, labelProbabilities, resolveClipDir, type ClassifyResult, type ClassifyOptions, type ClassifyImage, type LabelScore } from './classify';
export { expectedClipShapes, findClipFiles, readClipStateDict } from './models/clip-weights';
export { buildVqganWeights } from './models/vqgan';
export {
  validateGenerateParams, parseGeneratePrompt, checkSize, randomSeed, rangeText, GENERATE_LIMITS, GENERATE_STARTS, DEFAULT_START, PROMPT_MAX_LENGTH, MAX_IMAGE_PROMPTS,
  type GenerateParams, type ImagePromptSpec, type GenerateStart,
} from './guide/params';
export { planCutouts, cutoutsFromPlan, makeCutouts, type CutoutPlan, type CutoutSpec, type CutoutOptions } from './guide/cutouts';
export { generate, loadGenerateModels, vqganFactor, type GenerateModels, type GenerateEvent, type GenerateHooks, type Frame, type ModelChoice, type ModelInfo } from './guide/generate';
export { generateJob, unloadGenerateModels, type GenerateProgress, type GenerateRecipe, type GenerateJobResult, type GenerateJobParams } from './guide/job';
export { encodeAnimation } from './io/images';
export { ClipScorer, softmax, type ClipScorerOptions, type TextScore, type ScorerModel } from './scorer';
export {
  captionImage, CaptionLlm, LlmError, LlmTimeoutError, LlmAnswerError, parseCandidates, validateCaptionOptions, captionRangeText, CAPTION_LIMITS,
  termSet, supportingTerms, composeCaptions, varyCaptions, fixArticles, captionKey, proposeMessages, refineMessages, formatTerms, MAX_CAPTION_CHARS,
  type CaptionResult, type CaptionRound, type CaptionEvent, type CaptionDeps, type CaptionImage, type CaptionSource, type RankedCaption, type StopReason,
  type CaptionLlmOptions, type ChatMessage, type LlmAnswer, type CaptionOptions, type CaptionLimitName, type TermScore, type TermSet, type TermCategory,
} from './caption/index';
