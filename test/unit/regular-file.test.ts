import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { linkSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createTar } from '../../src/backends/docker/engine/tar.ts';
import { NotRegularFile, openRegularFile } from '../../src/util/regular-file.ts';

const dir = mkdtempSync(join(tmpdir(), 'cpi-regular-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function kindOf(path: string, opts: { singleLink?: boolean } = {}): Promise<string> {
  try {
    const { handle } = await openRegularFile(path, opts);
    await handle.close();
    return 'opened';
  } catch (e) {
    assert.ok(e instanceof NotRegularFile, String(e));
    return e.kind;
  }
}

test('only a regular file itself is opened: no link, device, FIFO or directory', async () => {
  const file = join(dir, 'file');
  writeFileSync(file, 'image');
  symlinkSync(file, join(dir, 'link'));
  symlinkSync('/dev/null', join(dir, 'device-link'));
  execFileSync('mkfifo', [join(dir, 'fifo')]);
  linkSync(file, join(dir, 'hard'));
  assert.equal(await kindOf(join(dir, 'link')), 'a symbolic link');
  assert.equal(await kindOf(join(dir, 'device-link')), 'a symbolic link');
  assert.equal(await kindOf('/dev/null'), 'a character device');
  assert.equal(await kindOf(join(dir, 'fifo')), 'a FIFO');
  assert.equal(await kindOf(dir), 'a directory');
  assert.equal(await kindOf(join(dir, 'hard'), { singleLink: true }), 'a hard link (2 names)');
  assert.equal(await kindOf(join(dir, 'hard')), 'opened');
  const { handle, size } = await openRegularFile(file);
  assert.equal(size, 5);
  assert.equal((await handle.readFile('utf8')).toString(), 'image');
  await handle.close();
});

test('a tar link target longer than its 100-byte field is refused instead of overrunning it', () => {
  const entry = (target: string) => ({
    name: 'l',
    type: 'symlink' as const,
    mode: 0o777,
    linkTarget: target,
  });
  assert.throws(() => createTar([entry(`/${'x'.repeat(100)}`)]), /tar link target too long \(101 bytes\)/);
  const ok = createTar([entry(`/${'x'.repeat(99)}`)]);
  assert.equal(ok.subarray(157, 257).toString('utf8'), `/${'x'.repeat(99)}`);
  assert.equal(ok.subarray(257, 262).toString('latin1'), 'ustar');
});
