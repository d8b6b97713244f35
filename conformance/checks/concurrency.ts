import type { Suite } from '../lib/env.ts';

export async function runConcurrency(_suite: Suite): Promise<void> {}
