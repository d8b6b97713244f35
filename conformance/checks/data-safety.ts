import type { Suite } from '../lib/env.ts';

export async function runDataSafety(_suite: Suite): Promise<void> {}
