'use client';
/**
 * The studio's home: what this install can do right now, measured by the server (/api/health),
 * a live socket.io connection, and the one engine job a browser can run today (a tfjs self-test
 * in an engine worker, with progress and cancel). Types come from server/protocol; no values,
 * so nothing of the server enters the browser bundle.
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import { io, type Socket } from 'socket.io-client';
import type { ClientToServer, HealthReport, PROTOCOL_VERSION, ProtocolError, ServerToClient } from '../../server/protocol';

// Type-checked against the server's constant: a protocol bump fails the build until this follows.
const CLIENT_PROTOCOL: typeof PROTOCOL_VERSION = 1;

type StudioSocket = Socket<ServerToClient, ClientToServer>;
type SelftestState =
  | { phase: 'idle' }
  | { phase: 'queued'; jobId?: string; position: number }
  | { phase: 'running'; jobId: string; step: number; of: number; eigen?: number }
  | { phase: 'done'; result: { steps: number; backend: string; eigen: number; tensorsLeaked: number } }
  | { phase: 'failed'; message: string }
  | { phase: 'cancelled' };

function bytes(n: number | null): string {
  if (n === null) return 'unknown';
  const gib = n / 2 ** 30;
  return gib >= 1 ? `${gib.toFixed(1)} GiB` : `${(n / 2 ** 20).toFixed(0)} MiB`;
}

export default function StudioHome() {
  const [health, setHealth] = useState<HealthReport | null>(null);
  const [healthError, setHealthError] = useState<string | null>(null);
  const [conn, setConn] = useState<'connecting' | 'connected' | 'disconnected'>('connecting');
  const [serverVersion, setServerVersion] = useState<string | null>(null);
  const [protocolError, setProtocolError] = useState<string | null>(null);
  const [selftest, setSelftest] = useState<SelftestState>({ phase: 'idle' });
  const socketRef = useRef<StudioSocket | null>(null);
  const jobRef = useRef<string | null>(null);

  const loadHealth = useCallback(async (fresh = false) => {
    try {
      const res = await fetch(fresh ? '/api/health?fresh=1' : '/api/health', { cache: 'no-store' });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      setHealth((await res.json()) as HealthReport);
      setHealthError(null);
    } catch (err) {
      setHealthError((err as Error).message);
    }
  }, []);

  useEffect(() => {
    void loadHealth();
    const socket: StudioSocket = io();
    socketRef.current = socket;
    socket.on('connect', () => {
      setConn('connected');
      socket.emit('hello', { protocolVersion: CLIENT_PROTOCOL, client: 'studio-web' });
    });
    socket.on('disconnect', () => setConn('disconnected'));
    socket.on('hello', (p) => setServerVersion(p.version));
    socket.on('error', (e: ProtocolError) => setProtocolError(e.message));
    socket.on('job:queued', (p) => {
      if (p.requestId !== 'selftest' && p.jobId !== jobRef.current) return;
      jobRef.current = p.jobId;
      setSelftest({ phase: 'queued', jobId: p.jobId, position: p.position });
    });
    socket.on('job:started', (p) => {
      if (p.jobId === jobRef.current) setSelftest({ phase: 'running', jobId: p.jobId, step: 0, of: 1 });
    });
    socket.on('job:progress', (p) => {
      if (p.jobId !== jobRef.current) return;
      const d = p.data as { step: number; of: number; eigen: number };
      setSelftest({ phase: 'running', jobId: p.jobId, step: d.step, of: d.of, eigen: d.eigen });
    });
    socket.on('job:done', (p) => {
      if (p.jobId !== jobRef.current) return;
      jobRef.current = null;
      setSelftest({ phase: 'done', result: p.result as Extract<SelftestState, { phase: 'done' }>['result'] });
    });
    socket.on('job:failed', (p) => {
      if (p.jobId !== jobRef.current && p.requestId !== 'selftest') return;
      jobRef.current = null;
      setSelftest({ phase: 'failed', message: p.error.message });
    });
    socket.on('job:cancelled', (p) => {
      if (p.jobId !== jobRef.current) return;
      jobRef.current = null;
      setSelftest({ phase: 'cancelled' });
    });
    return () => {
      socket.close();
    };
  }, [loadHealth]);

  const startSelftest = () => {
    setSelftest({ phase: 'queued', position: 0 });
    socketRef.current?.emit('job:start', { kind: 'tensor-selftest', params: { steps: 40, delayMs: 50 }, requestId: 'selftest' });
  };
  const cancelSelftest = () => {
    if (jobRef.current) socketRef.current?.emit('job:cancel', { jobId: jobRef.current });
  };

  const backend = health?.engine.tfjs?.backend;
  const models = health?.engine.models;
  const running = selftest.phase === 'queued' || selftest.phase === 'running';

  return (
    <>
      <h1>Studio</h1>

      <section className="card" aria-label="Connection">
        <h2>Connection</h2>
        <p data-testid="socket-status" className={conn === 'connected' ? 'ok' : conn === 'disconnected' ? 'bad' : 'muted'}>
          {conn}
          {conn === 'connected' && serverVersion ? ` to CLIP Studio ${serverVersion}` : ''}
        </p>
        {protocolError ? <p className="bad">{protocolError}</p> : null}
      </section>

      <section className="card" aria-label="Health">
        <h2>Health</h2>
        {healthError ? <p className="bad">Could not load /api/health: {healthError}</p> : null}
        {!health && !healthError ? <p className="muted">Checking…</p> : null}
        {health ? (
          <>
            <p data-testid="health-status" className={health.ok ? 'ok' : 'bad'}>
              {health.ok ? 'Ready to compute' : 'Not ready'}
            </p>
            <dl>
              <dt>tfjs backend</dt>
              <dd data-testid="backend">
                {backend ? (
                  <>
                    <strong>{backend.name}</strong> <span className="muted">({backend.reason}{backend.threads ? `, ${backend.threads} threads` : ''})</span>
                  </>
                ) : (
                  <span className="bad">{health.engine.tfjs?.error ?? health.engine.error ?? 'none'}</span>
                )}
              </dd>
              {backend?.skipped.length ? (
                <>
                  <dt>skipped</dt>
                  <dd className="muted">{backend.skipped.map((s) => `${s.name}: ${s.why}`).join('; ')}</dd>
                </>
              ) : null}
              <dt>onnxruntime</dt>
              <dd>
                {health.engine.onnx?.available
                  ? `${health.engine.onnx.version} (${health.engine.onnx.backends?.map((b) => b.name).join(', ')})`
                  : <span className="warn">{health.engine.onnx?.error ?? 'not checked'}</span>}
              </dd>
              <dt>models</dt>
              <dd data-testid="models">
                {!models ? <span className="muted">not checked</span>
                  : !models.registry ? <span className="warn">{models.error ?? 'model registry unavailable'}</span>
                  : models.installed.length === 0 ? <span className="warn">no models installed</span>
                  : models.installed.map((m) => (
                    <span key={m.id} className={m.verified ? 'ok' : 'bad'}>{m.id}{m.verified ? ' ✓' : ` ✗ ${m.problem ?? ''}`} </span>
                  ))}
              </dd>
              <dt>data</dt>
              <dd>
                <code>{health.data.dir}</code> {health.data.writable ? <span className="ok">writable</span> : <span className="bad">not writable</span>}
                <span className="muted">, {bytes(health.data.freeBytes)} free</span>
              </dd>
              <dt>node</dt>
              <dd>{health.node.version} · {health.node.platform}/{health.node.arch}</dd>
              <dt>workers</dt>
              <dd>{health.jobs.ready}/{health.jobs.workers} ready, {health.jobs.busy} busy, {health.jobs.queued} queued</dd>
            </dl>
            {health.problems.length ? (
              <ul className="problems">
                {health.problems.map((p) => <li key={p} className="warn">{p}</li>)}
              </ul>
            ) : null}
            <p><button onClick={() => void loadHealth(true)}>Re-check</button> <span className="muted">checked {new Date(health.checkedAt).toLocaleTimeString()}</span></p>
          </>
        ) : null}
      </section>

      <section className="card" aria-label="Engine self-test">
        <h2>Engine self-test</h2>
        <p className="muted">Runs a few real tensor steps in an engine worker thread, streaming progress over the socket.</p>
        <p>
          <button onClick={startSelftest} disabled={running || conn !== 'connected'}>Run</button>{' '}
          <button onClick={cancelSelftest} disabled={selftest.phase !== 'running'}>Cancel</button>
        </p>
        <div data-testid="selftest">
          {selftest.phase === 'queued' ? <p>Queued{selftest.position ? ` (position ${selftest.position})` : ''}…</p> : null}
          {selftest.phase === 'running' ? <><progress max={selftest.of} value={selftest.step} /> <p>step {selftest.step}/{selftest.of}</p></> : null}
          {selftest.phase === 'done' ? <p className="ok">Done: {selftest.result.steps} steps on {selftest.result.backend}, eigenvalue ≈ {selftest.result.eigen.toFixed(4)}, tensors leaked: {selftest.result.tensorsLeaked}</p> : null}
          {selftest.phase === 'failed' ? <p className="bad">Failed: {selftest.message}</p> : null}
          {selftest.phase === 'cancelled' ? <p className="warn">Cancelled.</p> : null}
        </div>
      </section>
    </>
  );
}
