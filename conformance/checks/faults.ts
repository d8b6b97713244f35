import type { Suite } from '../lib/env.ts';

export async function runFaults(_suite: Suite): Promise<void> {}
