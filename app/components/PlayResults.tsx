'use client';
/**
 * What the game shows between and after rounds: CLIP's guesses as bars, the reveal (every
 * drawing with its score, bonus and CLIP's guesses, penalties and moderation said plainly),
 * the cumulative leaderboard, the podium and the hall of fame. Protocol types only.
 */
import type { PlayGuess, PlayHallOfFame, PlayLeaderboardRow, PlayPodium, PlayReveal } from '../../server/protocol';

const pct = (p: number) => `${(p * 100).toFixed(p >= 0.1 ? 0 : 1)}%`;

export function GuessBars({ guesses, testId }: { guesses: PlayGuess[]; testId?: string }) {
  if (!guesses.length) return <p className="muted small" data-testid={testId}>CLIP is waiting for some ink…</p>;
  return (
    <ol className="guesses" data-testid={testId}>
      {guesses.map((g) => (
        <li key={g.label} data-testid="guess">
          <span className="label">{g.label}</span>
          <span className="bar"><span style={{ width: `${Math.max(1, g.probability * 100)}%` }} /></span>
          <span className="pct">{pct(g.probability)}</span>
        </li>
      ))}
    </ol>
  );
}

export function Leaderboard({ rows, me }: { rows: PlayLeaderboardRow[]; me?: string }) {
  return (
    <section className="card" aria-label="Leaderboard">
      <h2>Leaderboard</h2>
      <ol className="leaderboard" data-testid="leaderboard">
        {rows.map((r) => (
          <li key={r.seat} className={r.seat === me ? 'me' : ''} data-testid="leaderboard-row">
            <span className="rank">{r.rank}.</span> <span className="name">{r.nickname}</span> <strong className="score">{r.score}</strong>
          </li>
        ))}
      </ol>
    </section>
  );
}

export function Reveal({ reveal, me }: { reveal: PlayReveal; me?: string }) {
  return (
    <section className="card" aria-label="Reveal" data-testid="reveal">
      <h2>Round {reveal.round} of {reveal.rounds}: “{reveal.prompt}”</h2>
      {reveal.error ? <p className="bad">{reveal.error}</p> : null}
      <ul className="reveal">
        {reveal.entries.map((e) => (
          <li key={e.seat} className={e.seat === me ? 'me' : ''} data-testid="reveal-entry">
            {e.image ? <img src={e.image} alt={`${e.nickname}'s drawing`} width={160} height={160} />
              : <div className="placeholder muted small">{e.note ?? 'no drawing'}</div>}
            <div>
              <p className="who"><strong>{e.nickname}</strong>{e.rank ? <span className="muted"> · #{e.rank}</span> : null}</p>
              <p className="points" data-testid="points">
                <strong>{e.points}</strong> points <span className="muted small">(CLIP {e.clipScore.toFixed(1)}{e.bonus ? ` + rank bonus ${e.bonus}` : ''})</span>
              </p>
              {e.penalty ? <p className="warn small">Penalty ×{e.penalty.factor}: CLIP saw “{e.penalty.prompt}” more than the drawing.</p> : null}
              {e.moderated ? <p className="warn small">Hidden: the moderation prompts matched this drawing.</p> : null}
              {e.note && e.image ? <p className="muted small">{e.note}</p> : null}
              {e.guesses.length ? <GuessBars guesses={e.guesses.slice(0, 3)} /> : null}
            </div>
          </li>
        ))}
      </ul>
    </section>
  );
}

export function Podium({ podium, me }: { podium: PlayPodium; me?: string }) {
  const top = podium.leaderboard.slice(0, 3);
  const order = [top[1], top[0], top[2]].filter(Boolean) as PlayLeaderboardRow[];
  return (
    <section className="card" aria-label="Podium" data-testid="podium">
      <h2>Podium after {podium.rounds} round{podium.rounds === 1 ? '' : 's'}</h2>
      <div className="podium">
        {order.map((r) => (
          <div key={r.seat} className={`step step-${r.rank}${r.seat === me ? ' me' : ''}`}>
            <span className="name">{r.nickname}</span>
            <span className="score">{r.score}</span>
            <span className="block">{r.rank}</span>
          </div>
        ))}
      </div>
    </section>
  );
}

export function HallOfFame({ hall }: { hall: PlayHallOfFame }) {
  return (
    <section className="card" aria-label="Hall of fame" data-testid="hall-of-fame">
      <h2>Hall of fame</h2>
      {!hall.prompts.length ? <p className="muted">No drawings yet.</p> : null}
      {hall.prompts.map((p) => (
        <div key={p.prompt} className="hof-prompt">
          <h3>{p.prompt}</h3>
          <ul className="hof">
            {p.entries.map((e) => (
              <li key={e.id}>
                <img src={e.image} alt={`${e.nickname}'s ${p.prompt}`} width={96} height={96} />
                <span className="small">{e.nickname} · {e.score.toFixed(1)}</span>
              </li>
            ))}
          </ul>
        </div>
      ))}
    </section>
  );
}
