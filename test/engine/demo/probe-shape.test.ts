/**
 * The shape probe (engine/demo/probe-shape.ts) runs in each of its views (colour with a twin
 * anneal; doodle with the subjects as classes), reports held-out accuracy every 10 steps, and
 * frees every tensor it made.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { probeShape } from '../../../engine/demo/probe-shape';
import { initBackend, tf } from '../../../engine/runtime/tf';

test('the shape probe reports every 10 steps in each view and leaks no tensor', async () => {
  await initBackend();
  const before = tf.memory().numTensors;
  for (const view of ['colour', 'twin', 'distil', 'doodle'] as const) {
    const reports: { step: number; pictures: number; accuracy: number; twinAccuracy?: number }[] = [];
    await probeShape({ view, lr: 2e-4, steps: 10, batchSize: 4, ...(view === 'colour' ? { anneal: 5 } : {}), report: (r) => reports.push(r) });
    assert.equal(reports.length, 1, view);
    assert.equal(reports[0]!.step, 10);
    assert.equal(reports[0]!.pictures, view === 'distil' ? 20 : 40, 'distil spends half of each batch on twins');
    assert.ok(reports[0]!.accuracy >= 0 && reports[0]!.accuracy <= 1);
    assert.equal(reports[0]!.twinAccuracy !== undefined, view === 'distil');
  }
  assert.equal(tf.memory().numTensors, before);
});
