/**
 * Caption's socket adapter: every incoming payload is parsed with its protocol schema before
 * the service sees it (an invalid one gets the studio's `error` event naming the field); a
 * client may cancel only its own jobs, and its jobs are cancelled when it disconnects.
 *
 * @example
 * attachCaptionSockets(io, new CaptionService({ config, scoring, uploads }));
 */
import type { Server, Socket } from 'socket.io';
import {
  CaptionCancelSchema, CaptionClientEvent, CaptionServerEvent, CaptionStartSchema, ServerEvent, parsePayload,
  type ClientToServer, type ServerToClient,
} from '../protocol';
import { toCaptionError, type CaptionService } from './service';

type CaptionSocket = Socket<ClientToServer, ServerToClient>;

export interface CaptionSocketOptions {
  /** Charge a caption request to the client (the server's rate limits); refused: the message says why. */
  admit?: (socket: CaptionSocket) => Promise<{ ok: true } | { ok: false; message: string }>;
  log?: (message: string) => void;
}

export function attachCaptionSockets(io: Server<ClientToServer, ServerToClient>, service: CaptionService, opts: CaptionSocketOptions = {}): void {
  const log = opts.log ?? ((m: string) => console.error(m));
  io.on('connection', (socket: CaptionSocket) => {
    const owned = new Set<string>();

    socket.on(CaptionClientEvent.info, () => {
      service.info().then((info) => socket.emit(CaptionServerEvent.info, info), (err) => log(`[caption] info: ${String(err)}`));
    });

    socket.on(CaptionClientEvent.start, async (raw) => {
      const r = parsePayload(CaptionStartSchema, CaptionClientEvent.start, raw);
      if (!r.ok) return void socket.emit(ServerEvent.error, r.error);
      const { requestId, ...params } = r.value;
      const withRequest = requestId ? { requestId } : {};
      const verdict = opts.admit ? await opts.admit(socket).catch(() => ({ ok: true as const })) : { ok: true as const };
      if (!verdict.ok) return void socket.emit(CaptionServerEvent.failed, { jobId: '', error: { code: 'RATE_LIMITED', message: verdict.message }, ...withRequest });
      try {
        const { id } = service.start(params, (e) => {
          switch (e.type) {
            case 'queued': owned.add(e.jobId); return void socket.emit(CaptionServerEvent.queued, { jobId: e.jobId, position: e.position, ...withRequest });
            case 'started': return void socket.emit(CaptionServerEvent.started, { jobId: e.jobId });
            case 'terms': return void socket.emit(CaptionServerEvent.terms, { jobId: e.jobId, terms: e.terms });
            case 'notice': return void socket.emit(CaptionServerEvent.notice, { jobId: e.jobId, message: e.message });
            case 'round': return void socket.emit(CaptionServerEvent.round, { jobId: e.jobId, round: e.round });
            case 'done': owned.delete(e.jobId); return void socket.emit(CaptionServerEvent.done, { jobId: e.jobId, result: e.result });
            case 'failed': owned.delete(e.jobId); return void socket.emit(CaptionServerEvent.failed, { jobId: e.jobId, error: e.error, ...withRequest });
            case 'cancelled': owned.delete(e.jobId); return void socket.emit(CaptionServerEvent.cancelled, { jobId: e.jobId });
          }
        });
        owned.add(id);
      } catch (err) {
        // BusyError (queue full) and InputError (unknown upload) keep their words; anything else is generic
        socket.emit(CaptionServerEvent.failed, { jobId: '', error: toCaptionError(err, log), ...withRequest });
      }
    });

    socket.on(CaptionClientEvent.cancel, (raw) => {
      const r = parsePayload(CaptionCancelSchema, CaptionClientEvent.cancel, raw);
      if (!r.ok) return void socket.emit(ServerEvent.error, r.error);
      if (!owned.has(r.value.jobId) || !service.cancel(r.value.jobId)) {
        socket.emit(ServerEvent.error, { event: CaptionClientEvent.cancel, field: 'jobId', message: `caption:cancel: jobId: no caption job ${r.value.jobId} of yours is pending` });
      }
    });

    socket.on('disconnect', () => {
      for (const id of owned) service.cancel(id);
      owned.clear();
    });
  });
}
