import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, loadConfig } from '../../server/config';

describe('loadConfig', () => {
  it('has defaults for an empty environment', () => {
    const c = loadConfig({}, { cwd: '/srv/studio' });
    assert.equal(c.port, 3000);
    assert.equal(c.host, undefined);
    assert.equal(c.dataDir, '/srv/studio/data');
    assert.equal(c.modelsDir, '/srv/studio/data/models');
    assert.equal(c.backend, 'auto');
    assert.equal(c.workers, 1);
    assert.equal(c.redisUrl, undefined);
  });

  it('reads and types each variable', () => {
    const c = loadConfig({ PORT: '8080', HOST: '127.0.0.1', CLIP_STUDIO_DATA: 'd', CLIP_STUDIO_MODELS: '/m', CLIP_STUDIO_BACKEND: 'wasm', CLIP_STUDIO_ORT_PROVIDER: 'WebGPU', CLIP_STUDIO_WORKERS: '3', OPENAI_BASE_URL: 'http://localhost:11434/v1', CAPTION_LLM_MODEL: 'llava', REDIS_URL: 'redis://localhost:6379', HF_TOKEN: 'x' }, { cwd: '/w' });
    assert.equal(c.port, 8080);
    assert.equal(c.host, '127.0.0.1');
    assert.equal(c.dataDir, '/w/d');
    assert.equal(c.modelsDir, '/m');
    assert.equal(c.backend, 'wasm');
    assert.equal(c.ortProvider, 'webgpu');
    assert.equal(c.workers, 3);
    assert.equal(c.llm.baseUrl, 'http://localhost:11434/v1');
    assert.equal(c.llm.model, 'llava');
    assert.equal(c.redisUrl, 'redis://localhost:6379');
    assert.equal(c.hf.token, 'x');
  });

  const bad: [string, string, RegExp][] = [
    ['PORT', 'eighty', /PORT must be an integer port 0–65535/],
    ['CLIP_STUDIO_WORKERS', '0', /CLIP_STUDIO_WORKERS must be an integer 1–64/],
    ['CLIP_STUDIO_BACKEND', 'cuda', /CLIP_STUDIO_BACKEND must be one of auto, node-gpu, node, webgpu, wasm, cpu, got "cuda"/],
    ['CLIP_STUDIO_ORT_PROVIDER', 'gpu', /CLIP_STUDIO_ORT_PROVIDER must be one of auto, cpu, cuda, webgpu, got "gpu"/],
    ['REDIS_URL', 'not a url', /REDIS_URL must be a URL/],
  ];
  for (const [variable, value, message] of bad) {
    it(`rejects ${variable}=${value} naming the variable and what it accepts`, () => {
      assert.throws(() => loadConfig({ [variable]: value }), (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.variable, variable);
        assert.match(err.message, message);
        return true;
      });
    });
  }
});
