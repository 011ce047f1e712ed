/**
 * What a web node needs from Redis besides the job queue (server/jobs/bullmq.ts): socket.io's
 * redis adapter, so `io.to(room or socket id)` reaches sockets on every node, and the game's
 * room directory (./rooms.ts).
 */
import { createAdapter } from '@socket.io/redis-adapter';
import { RedisHallOfFame } from './hall-of-fame';
import { GameCluster } from './rooms';
import { redisConnection } from '../jobs/bullmq';

export interface RedisScaleOut {
  adapter: ReturnType<typeof createAdapter>;
  rooms: GameCluster;
  /** Play's hall of fame, shared by every node. */
  hallOfFame: RedisHallOfFame;
  close(): Promise<void>;
}

export async function startRedisScaleOut(url: string, opts: { leaseMs?: number } = {}): Promise<RedisScaleOut> {
  const pub = redisConnection(url);
  const sub = pub.duplicate();
  for (const c of [pub, sub]) c.on('error', (err: Error) => console.error(`[socket.io] redis: ${err.message}`));
  const rooms = await GameCluster.start({ url, ...opts });
  const store = redisConnection(url);
  store.on('error', (err: Error) => console.error(`[play] hall of fame redis: ${err.message}`));
  return {
    adapter: createAdapter(pub, sub),
    rooms,
    hallOfFame: new RedisHallOfFame(store),
    close: async () => {
      await rooms.close();
      pub.disconnect();
      sub.disconnect();
      store.disconnect();
    },
  };
}
