#!/usr/bin/env node
// The `clip-studio` command. Registers tsx so the TypeScript CLI runs without a build step.
import { register } from 'tsx/esm/api';

register();
await import('./index.ts');
