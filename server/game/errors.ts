/**
 * The game's errors: a stable `code` the client can act on, a message written for a person,
 * and the `field` that was wrong when there is one. The socket adapter turns them into
 * `play:error` events; nothing else reaches the client.
 */
export type GameErrorCode =
  | 'ROOM_NOT_FOUND' // no room with that code (or it has closed)
  | 'ROOM_FULL' // 12 players (or the spectator limit) already
  | 'NICKNAME_TAKEN'
  | 'NOT_HOST' // a host-only action
  | 'NOT_IN_ROOM'
  | 'NOT_A_PLAYER' // spectators do not draw
  | 'WRONG_PHASE' // e.g. start during a round
  | 'LATE' // a drawing for a round that is over
  | 'RATE_LIMITED'
  | 'BAD_DRAWING' // not a PNG, too big, undecodable
  | 'NO_PACK' // no prompt pack for the active model
  | 'INVALID'; // a payload that does not match its schema

export class GameError extends Error {
  constructor(readonly code: GameErrorCode, message: string, readonly field?: string) {
    super(message);
    this.name = 'GameError';
  }
}
