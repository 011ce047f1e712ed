/**
 * Training throughput of the demo models. The demo CLIP: pictures per second of the bundled recipe's steps
 * (batch 64, label terms with backgrounds, auxiliary heads, contrast twins and their blend, the
 * slower image tower) on each trainer engine, in one process, from a seeded initialisation. The
 * first steps are warm-up (graph building, the batch worker starting) and are not timed. The
 * demo VQGAN: pictures per second of train-vqgan.ts's steps at the bundled recipe's batch, on
 * each engine.
 */
import { DEFAULT_TRAIN, DEMO_CLIP_SIZES, trainClip, type TrainEngine } from '../engine/demo/train-clip';
import { weightTensors } from '../engine/models/clip-weights';
import { disposeVqgan } from '../engine/models/vqgan';
import { trainVqgan, type VqganTrainEngine } from '../engine/demo/train-vqgan';

export async function trainThroughput(engine: TrainEngine, steps: number, warmup = 2): Promise<{ pictures_per_s: number; timed_steps: number; batch: number }> {
  const at: number[] = [];
  const trained = await trainClip({
    ...DEFAULT_TRAIN, sizes: DEMO_CLIP_SIZES, steps: 3000, until: warmup + steps, engine, readEvery: 1,
    auxHeads: true, backgroundLabels: true, contrastTwins: true, twinCurriculum: 1200, visionLrScale: 0.2,
    onStep: () => { at.push(performance.now()); },
  });
  for (const t of weightTensors(trained.weights)) t.dispose();
  const seconds = (at[warmup + steps - 1]! - at[warmup - 1]!) / 1000;
  return { pictures_per_s: (steps * DEFAULT_TRAIN.batchSize) / seconds, timed_steps: steps, batch: DEFAULT_TRAIN.batchSize };
}

export async function vqganTrainThroughput(engine: VqganTrainEngine, steps: number, batch: number, warmup = 2): Promise<{ pictures_per_s: number; timed_steps: number; batch: number }> {
  const at: number[] = [];
  const trained = await trainVqgan({ seed: 1, steps: warmup + steps, batchSize: batch, logEvery: 1, engine, onLog: () => { at.push(performance.now()); } });
  disposeVqgan(trained.weights);
  const seconds = (at[warmup + steps - 1]! - at[warmup - 1]!) / 1000;
  return { pictures_per_s: (steps * batch) / seconds, timed_steps: steps, batch };
}
