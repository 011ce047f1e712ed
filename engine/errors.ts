/**
 * The engine's small error hierarchy (in the spirit of ky's HTTPError/TimeoutError).
 * Every error has a stable `code` the server maps to a client-facing message; the
 * message itself is written for a person and names what was wrong.
 */
export class ClipStudioError extends Error {
  readonly code: string = 'CLIP_STUDIO_ERROR';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A model's files are missing, unreadable, or do not match what the architecture expects. */
export class ModelLoadError extends ClipStudioError {
  override readonly code = 'MODEL_LOAD';
}

/** A tensor has the wrong shape or dtype for where it is used. */
export class ShapeError extends ClipStudioError {
  override readonly code = 'SHAPE';
}

/** Input from a user (a prompt, an option, an image) is invalid. `field` names which. */
export class InputError extends ClipStudioError {
  override readonly code = 'INPUT';
  constructor(readonly field: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A download failed: network, HTTP status, disk. */
export class DownloadError extends ClipStudioError {
  override readonly code = 'DOWNLOAD';
  constructor(message: string, readonly status?: number, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A file's sha256 is not the one pinned or recorded. */
export class ChecksumError extends ClipStudioError {
  override readonly code = 'CHECKSUM';
}

/** A job was cancelled by its owner. */
export class CancelledError extends ClipStudioError {
  override readonly code = 'CANCELLED';
  constructor(message = 'The job was cancelled.') {
    super(message);
  }
}

/** The queue is full; `ahead` jobs are waiting. */
export class BusyError extends ClipStudioError {
  override readonly code = 'BUSY';
  constructor(readonly ahead: number) {
    super(`The studio is busy: ${ahead} job${ahead === 1 ? '' : 's'} ahead. Try again shortly.`);
  }
}
