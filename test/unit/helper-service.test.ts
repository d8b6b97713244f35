import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { encodeWord, MAX_REQUEST_BYTES, scriptHash } from '../../src/backends/docker/helper-service.ts';

/** Decodes words the way the helper service does (sh's printf %b), each word split off by spaces. */
function decodeInSh(line: string): string[] {
  const script = `
set -f; set -- $1; set +f
for a in "$@"; do
  case $a in *\\\\*) a=$(printf '%b.' "$a"); a=\${a%.};; esac
  printf '%s\\0' "$a"
done`;
  const run = spawnSync('/bin/sh', ['-c', script, 'sh', line], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  return run.stdout.split('\0').slice(0, -1);
}

describe('helper service request words', () => {
  test('every value comes back byte for byte from the shell, one word each', () => {
    const values = [
      'create-disk',
      '/var/lib/bosh docker cpi',
      'disk-5954e944-9ed7-4cc3-9162-3b5166b8027f',
      JSON.stringify({ cpi: { name: 'it\'s "quoted" \\ back\\slash', env: '$HOME `id` $(id)' }, bosh: {} }),
      'tab\there, newline\nthere, trailing newline\n',
      'ünïcødé ✓',
      '',
      '*',
      '-n',
    ];
    const line = values.map(encodeWord).join(' ');
    assert.doesNotMatch(line, /[\s]{2}|\n|\t/, 'a line of single-space separated words');
    assert.deepEqual(decodeInSh(line), values);
  });

  test('words hold only characters the shell leaves alone', () => {
    assert.match(encodeWord('a b;c|d&e$f`g"h\'i<j>k(l)m{n}o[p]q?r*s~t#u!v%w^'), /^[A-Za-z0-9._,:/=@+\\-]+$/);
  });

  test('script hashes are 16 hex digits and change with the script', () => {
    assert.match(scriptHash('echo a'), /^[0-9a-f]{16}$/);
    assert.notEqual(scriptHash('echo a'), scriptHash('echo b'));
    assert.ok(MAX_REQUEST_BYTES < 4096, 'one pipe write (PIPE_BUF) per request');
  });
});
