import type { Suite } from '../lib/env.ts';

export async function runEngineRestart(_suite: Suite): Promise<void> {}
