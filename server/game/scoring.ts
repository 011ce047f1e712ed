/**
 * The game's arithmetic, free of I/O: a judged round's entries ranked with their rank bonus,
 * and the cumulative leaderboard. The room calls these; the judge (judge.ts) supplies the
 * CLIP verdicts they rank.
 *
 * @example
 * const entries = scoreRound([{ seat: 's1', nickname: 'Ada', image: url, verdict }]);
 * entries[0].points; // clipScore + bonus
 */
import type { PlayGuess, PlayLeaderboardRow, PlayRevealEntry } from '../protocol';

/** The best drawing of a round gets this bonus, the worst 0, the others in between. */
export const RANK_BONUS_MAX = 20;

/** What the judge says about one drawing. */
export interface DrawingVerdict {
  /** CLIP's probability of the round's prompt among the pack's prompts (0–1), before any penalty. */
  probability: number;
  /** probability × 100 × (penalty factor when penalised), one decimal. */
  clipScore: number;
  /** CLIP's top guesses among the pack's prompts, best first. */
  guesses: PlayGuess[];
  penalty: { prompt: string; factor: number } | null;
  moderated: boolean;
  /** Nothing drawn (no ink on the canvas): scores 0 without asking CLIP's opinion. */
  blank: boolean;
}

export interface RoundEntryInput {
  seat: string;
  nickname: string;
  /** data: URL of the drawing, or null when the player sent none. */
  image: string | null;
  /** null when there was no drawing or the judge failed. */
  verdict: DrawingVerdict | null;
}

/** Competition ranking ("1, 1, 3") of `values`, higher is better. */
export function competitionRanks(values: readonly number[]): number[] {
  return values.map((v) => 1 + values.filter((w) => w > v).length);
}

/** The bonus of rank `rank` (1-based) among `n` judged drawings: 0 when only one was judged. */
export function rankBonus(rank: number, n: number): number {
  if (n < 2) return 0;
  return Math.round((RANK_BONUS_MAX * (n - rank)) / (n - 1));
}

/**
 * Rank a round: drawings that were judged (not blank, not moderated) are ranked by clipScore
 * and get a rank bonus; the rest score 0 with a note saying why. Returns the reveal entries,
 * best first.
 */
export function scoreRound(inputs: readonly RoundEntryInput[], judgeError?: string): PlayRevealEntry[] {
  const judged = inputs.filter((e) => e.verdict && !e.verdict.blank && !e.verdict.moderated);
  const ranks = competitionRanks(judged.map((e) => e.verdict!.clipScore));
  const entries = inputs.map((e): PlayRevealEntry => {
    const v = e.verdict;
    const i = judged.indexOf(e);
    const rank = i >= 0 ? ranks[i]! : null;
    const bonus = rank !== null ? rankBonus(rank, judged.length) : 0;
    const clipScore = v && !v.blank && !v.moderated ? v.clipScore : 0;
    const note = !e.image ? 'no drawing' : judgeError ? 'not judged' : v?.blank ? 'empty canvas' : v?.moderated ? 'hidden by moderation' : null;
    return {
      seat: e.seat, nickname: e.nickname, image: v?.moderated ? null : e.image,
      clipScore, bonus, points: Math.round(clipScore) + bonus, rank,
      guesses: v && !v.moderated ? v.guesses : [], penalty: v?.penalty ?? null, moderated: v?.moderated ?? false, note,
    };
  });
  return entries.sort((a, b) => b.points - a.points || (a.rank ?? Infinity) - (b.rank ?? Infinity));
}

/** Players by total score, best first, with competition ranks. */
export function leaderboard(players: readonly { seat: string; nickname: string; score: number }[]): PlayLeaderboardRow[] {
  const sorted = [...players].sort((a, b) => b.score - a.score);
  const ranks = competitionRanks(sorted.map((p) => p.score));
  return sorted.map((p, i) => ({ seat: p.seat, nickname: p.nickname, score: p.score, rank: ranks[i]! }));
}
