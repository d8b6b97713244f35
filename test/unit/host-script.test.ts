import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  encodeHostArgs,
  HOST_EXIT_CODES,
  HOST_OPERATIONS,
  hostOutcome,
} from '../../src/backends/docker/host-operations.ts';
import { hostScript } from '../../src/backends/docker/host-script.ts';
import { runHostScript } from '../support/host-script.ts';
import { diskCid, snapshotCid, vmCid } from '../support/ids.ts';

/** The script run directly in a scratch data_dir (no helper, no nsenter): only operations that need no mount. */
const dataDir = mkdtempSync(join(tmpdir(), 'host-script-'));
after(() => rmSync(dataDir, { recursive: true, force: true }));

const run = (op: string, args: string[]) => runHostScript(dataDir, op, args);

const DISK = diskCid('disk-0b7e5a1c-7b7a-4d8e-9a1b-1234567890ab');
const SNAP = snapshotCid('snap-0b7e5a1c-7b7a-4d8e-9a1b-1234567890ab');

describe('host operations table and script', () => {
  test('the script parses and has a branch for every operation in the table', () => {
    assert.equal(spawnSync('sh', ['-n', '-c', hostScript()]).status, 0);
    for (const op of Object.keys(HOST_OPERATIONS)) assert.match(hostScript(), new RegExp(`^${op}\\)$`, 'm'));
  });

  test('an operation called with too few arguments fails naming them, before doing anything', () => {
    const r = run('detach-disk', [DISK]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, 'detach-disk takes: vm cid pid wait_s');
  });

  test('an unknown operation fails', () => {
    assert.equal(run('format-host', []).code, 2);
  });

  test("a missing disk answers the table's notFound code", () => {
    const r = run('has-disk', encodeHostArgs('has-disk', [DISK]));
    assert.equal(r.code, HOST_EXIT_CODES.notFound);
    assert.equal(hostOutcome('has-disk', r.code ?? -1), 'notFound');
  });

  test('set-disk-metadata writes the JSON the caller passed, encoded once', () => {
    mkdirSync(join(dataDir, 'disks', DISK), { recursive: true });
    mkdirSync(join(dataDir, 'locks'), { recursive: true });
    writeFileSync(join(dataDir, 'disks', DISK, 'disk.img'), '');
    const meta = { bosh: { deployment: 'd' } };
    assert.equal(run('set-disk-metadata', encodeHostArgs('set-disk-metadata', [DISK, '', meta])).code, 0);
    assert.deepEqual(JSON.parse(readFileSync(join(dataDir, 'disks', DISK, 'metadata.json'), 'utf8')), meta);
    assert.equal(run('has-disk', [DISK]).code, 0);
    assert.equal(run('has-disk', ['disk-00000000-0000-4000-8000-000000000000']).code, 3);
  });

  test('delete-snapshot removes a snapshot and answers notFound the second time', () => {
    mkdirSync(join(dataDir, 'snapshots', SNAP), { recursive: true });
    assert.equal(run('delete-snapshot', encodeHostArgs('delete-snapshot', [SNAP])).code, 0);
    assert.equal(run('delete-snapshot', [SNAP]).code, HOST_EXIT_CODES.notFound);
  });

  test('list-disks of a VM without mounts prints nothing', () => {
    const r = run(
      'list-disks',
      encodeHostArgs('list-disks', [vmCid('vm-0b7e5a1c-7b7a-4d8e-9a1b-1234567890ab')]),
    );
    assert.equal(r.code, 0);
    assert.equal(r.stdout, '');
  });

  test('an optional argument left out is passed empty; numbers and JSON are encoded for the command line', () => {
    assert.deepEqual(encodeHostArgs('create-disk', [DISK, 10, { a: 1 }, undefined]), [
      DISK,
      '10',
      '{"a":1}',
      '',
    ]);
  });

  test('an exit code an operation does not declare is a failure, not another outcome', () => {
    assert.equal(hostOutcome('list-disks', HOST_EXIT_CODES.notFound), 'failed');
    assert.equal(hostOutcome('detach-disk', HOST_EXIT_CODES.notAttached), 'notAttached');
    assert.equal(hostOutcome('detach-disk', 0), 'done');
  });
});
