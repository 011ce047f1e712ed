/**
 * The studio's socket adapter: every incoming payload is parsed with its protocol schema first;
 * an invalid one gets an `error` event naming the field. Job starts are rate-limited per
 * connection and per address. A client may cancel only its own jobs, and its jobs are cancelled
 * when it disconnects. What goes back passes the redactor (no server paths, no secrets).
 */
import type { Server, Socket } from 'socket.io';
import { BusyError, ClipStudioError, InputError, JobFailedError } from '../../engine/index';
import {
  ClientEvent, HelloSchema, JobCancelSchema, JobStartSchema, PROTOCOL_VERSION, ServerEvent, parsePayload,
  type ClientToServer, type JobError, type ServerToClient,
} from '../protocol';
import { buildHealthReport, STUDIO_VERSION } from '../health';
import type { ApiContext } from '../http';
import { whoIs } from '../limits';

type StudioSocket = Socket<ClientToServer, ServerToClient>;

function toJobError(err: unknown): JobError {
  if (err instanceof BusyError) return { code: err.code, message: err.message };
  if (err instanceof JobFailedError) return { code: err.code, message: err.message, ...(err.field ? { field: err.field } : {}) };
  if (err instanceof InputError) return { code: err.code, message: err.message, field: err.field };
  if (err instanceof ClipStudioError && err.code === 'SHUTTING_DOWN') return { code: err.code, message: err.message };
  console.error('[socket] job:start:', err);
  return { code: 'INTERNAL', message: 'The job could not be started.' };
}

export function attachStudioSockets(io: Server<ClientToServer, ServerToClient>, ctx: ApiContext): void {
  io.on('connection', (socket: StudioSocket) => {
    const owned = new Set<string>();
    const who = whoIs(socket, ctx.config);
    const failed = (jobId: string, error: JobError, requestId?: string) =>
      socket.emit(ServerEvent.jobFailed, { jobId, error: ctx.redact(error), ...(requestId ? { requestId } : {}) });

    socket.on(ClientEvent.hello, (raw) => {
      const r = parsePayload(HelloSchema, ClientEvent.hello, raw);
      if (!r.ok) return void socket.emit(ServerEvent.error, r.error);
      if (r.value.protocolVersion !== PROTOCOL_VERSION) {
        socket.emit(ServerEvent.error, {
          event: ClientEvent.hello, field: 'protocolVersion',
          message: `This server speaks protocol ${PROTOCOL_VERSION}, the client ${r.value.protocolVersion}; reload the page.`,
        });
        return void socket.disconnect(true);
      }
      socket.emit(ServerEvent.hello, { protocolVersion: PROTOCOL_VERSION, version: STUDIO_VERSION });
    });

    socket.on(ClientEvent.healthGet, () => {
      buildHealthReport(ctx.config, ctx.queue, ctx.engine).then(
        (report) => socket.emit(ServerEvent.healthReport, ctx.redact(report)),
        (err) => console.error('[socket] health:', err),
      );
    });

    socket.on(ClientEvent.jobStart, async (raw) => {
      const r = parsePayload(JobStartSchema, ClientEvent.jobStart, raw);
      if (!r.ok) return void socket.emit(ServerEvent.error, r.error);
      const { kind, params, requestId } = r.value;
      const verdict = await ctx.limits.take('job:start', who);
      if (!verdict.ok) return void failed('', { code: 'RATE_LIMITED', message: verdict.message }, requestId);
      if (!socket.connected) return; // it left while we checked
      try {
        if (kind === 'generate') {
          if (!ctx.generate) throw new Error('generation is not available on this server');
          const handle = ctx.generate.start(params, (e) => {
            switch (e.type) {
              case 'queued': return void socket.emit(ServerEvent.jobQueued, { jobId: e.jobId, kind, position: e.position, ...(requestId ? { requestId } : {}) });
              case 'started': return void socket.emit(ServerEvent.jobStarted, { jobId: e.jobId });
              case 'progress': return void socket.emit(ServerEvent.jobProgress, { jobId: e.jobId, data: e.data });
              case 'done': owned.delete(e.jobId); ctx.jobs.setResult(e.jobId, e.item.id); return void socket.emit(ServerEvent.jobDone, { jobId: e.jobId, result: ctx.redact(e.item) });
              case 'failed': owned.delete(e.jobId); return void failed(e.jobId, e.error);
              case 'cancelled': owned.delete(e.jobId); return void socket.emit(ServerEvent.jobCancelled, { jobId: e.jobId });
            }
          });
          owned.add(handle.id);
          return;
        }
        const handle = ctx.queue.submit(kind, params, (e) => {
          switch (e.type) {
            case 'queued': return void socket.emit(ServerEvent.jobQueued, { jobId: e.jobId, kind, position: e.position, ...(requestId ? { requestId } : {}) });
            case 'started': return void socket.emit(ServerEvent.jobStarted, { jobId: e.jobId });
            case 'progress': return void socket.emit(ServerEvent.jobProgress, { jobId: e.jobId, data: e.data });
            case 'done': owned.delete(e.jobId); return void socket.emit(ServerEvent.jobDone, { jobId: e.jobId, result: ctx.redact(e.result) });
            case 'failed': owned.delete(e.jobId); return void failed(e.jobId, e.error);
            case 'cancelled': owned.delete(e.jobId); return void socket.emit(ServerEvent.jobCancelled, { jobId: e.jobId });
          }
        });
        owned.add(handle.id);
      } catch (err) {
        failed('', toJobError(err), requestId);
      }
    });

    socket.on(ClientEvent.jobCancel, (raw) => {
      const r = parsePayload(JobCancelSchema, ClientEvent.jobCancel, raw);
      if (!r.ok) return void socket.emit(ServerEvent.error, r.error);
      if (!owned.has(r.value.jobId)) {
        return void socket.emit(ServerEvent.error, { event: ClientEvent.jobCancel, field: 'jobId', message: `job:cancel: jobId: no job ${r.value.jobId} of yours is pending` });
      }
      ctx.queue.cancel(r.value.jobId);
    });

    socket.on('disconnect', () => {
      for (const id of owned) ctx.queue.cancel(id);
      owned.clear();
    });
  });
}
