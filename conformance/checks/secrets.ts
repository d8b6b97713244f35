import type { Suite } from '../lib/env.ts';

export async function runSecrets(_suite: Suite): Promise<void> {}
