import type { Suite } from '../lib/env.ts';

export async function runBadInput(_suite: Suite): Promise<void> {}
