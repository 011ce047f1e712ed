/**
 * A socket.io client for server tests that records every event it receives (and its own
 * disconnect), with `waitFor(event, predicate)` that resolves on a past or future match.
 *
 * @example
 * const { c, waitFor } = await recordingClient(url);
 * c.emit('job:start', { kind: 'tensor-selftest' });
 * await waitFor('job:done', (p) => p.jobId === id);
 */
import { io as connect, type Socket } from 'socket.io-client';

export type RecordedEvent = { event: string; payload: Record<string, unknown> };

export async function recordingClient(url: string, opts: { timeoutMs?: number } = {}) {
  const c: Socket = connect(url, { transports: ['websocket'], forceNew: true, reconnection: false });
  const events: RecordedEvent[] = [];
  const waiters: (() => void)[] = [];
  const record = (event: string, payload: Record<string, unknown>) => {
    events.push({ event, payload });
    for (const w of waiters.splice(0)) w();
  };
  c.onAny(record);
  c.on('disconnect', () => record('disconnect', {}));
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('connect_error', reject);
  });
  const waitFor = (event: string, pred: (p: Record<string, unknown>) => boolean = () => true, ms = opts.timeoutMs ?? 60_000) =>
    new Promise<RecordedEvent>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${event} in ${ms} ms; got ${events.map((e) => e.event).join(', ')}`)), ms);
      const check = () => {
        const found = events.find((e) => e.event === event && pred(e.payload));
        if (found) { clearTimeout(timer); resolve(found); } else waiters.push(check);
      };
      check();
    });
  return { c, events, waitFor };
}
