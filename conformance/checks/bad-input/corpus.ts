import { randomUUID } from 'node:crypto';
import { basename } from 'node:path';
import { short } from '../../lib/assert.ts';
import type { Cpi } from '../../lib/cpi.ts';
import type { Suite } from '../../lib/env.ts';
import {
  ANY,
  type Case,
  CPI_ERROR,
  DISK_NOT_FOUND,
  type Expect,
  FALSE_OR_ERROR,
  NULL_OR_ERROR,
  VM_NOT_FOUND,
} from './expect.ts';

/** The argument kinds of every method (protocol.md §3), for wrong-type generation. */
export type Kind = 'str' | 'cid' | 'obj' | 'int' | 'list' | 'cidOrNull' | 'size';
export const SIGNATURES: Record<string, Kind[]> = {
  create_stemcell: ['str', 'obj', 'obj'],
  delete_stemcell: ['cid'],
  create_vm: ['str', 'cid', 'obj', 'obj', 'list', 'obj'],
  delete_vm: ['cid'],
  has_vm: ['cid'],
  reboot_vm: ['cid'],
  set_vm_metadata: ['cid', 'obj'],
  calculate_vm_cloud_properties: ['size'],
  create_disk: ['int', 'obj', 'cidOrNull'],
  delete_disk: ['cid'],
  has_disk: ['cid'],
  attach_disk: ['cid', 'cid'],
  detach_disk: ['cid', 'cid'],
  set_disk_metadata: ['cid', 'obj'],
  get_disks: ['cid'],
  resize_disk: ['cid', 'int'],
  update_disk: ['cid', 'int', 'obj'],
  snapshot_disk: ['cid', 'obj'],
  delete_snapshot: ['cid'],
};
/**
 * Arguments a request cannot do without. Trailing arguments with a neutral default (env,
 * disk_cids, metadata, the vm_cid locality hint, create_stemcell's v3 tags) may be tolerated
 * when missing; every other missing argument must be refused.
 */
const REQUIRED: Record<string, number> = {
  create_stemcell: 2,
  create_vm: 4,
  create_disk: 2,
  snapshot_disk: 1,
};

/** Values of the wrong type for each kind; null is left out where callers send it for "none". */
const WRONG: Record<Kind, unknown[]> = {
  str: [42, null, { path: 'x' }, ['x']],
  cid: [42, null, {}, true],
  obj: ['{}', 42, [], true],
  int: ['64', 1.5, 0, -5, null, {}],
  list: ['disk-1', {}, 42],
  cidOrNull: [42, {}, true],
  size: [
    'big',
    [],
    { cpu: '2', ram: 1024, ephemeral_disk_size: 1024 },
    { cpu: 2, ram: -1, ephemeral_disk_size: 1024 },
    { cpu: 2 },
  ],
};

export interface Fixture {
  vm: string;
  vmAgent: string;
  container: string;
  disk: string;
  snap: string;
  stemcell: string;
  /** The CPI's helper container (the Docker CPI's host-side worker), if the engine has one. */
  helperName: string;
  helperImage: string;
}

/** Arguments that are valid and would act on real resources, so a tolerated wrong value shows. */
export function validArgs(method: string, f: Fixture, suite: Suite): unknown[] {
  const net = suite.addresses.spare();
  switch (method) {
    case 'create_stemcell':
      return [suite.stemcellImage, {}, { tags: {} }];
    case 'delete_stemcell':
      return [`stemcell-${randomUUID()}`];
    case 'create_vm':
      return [`agent-${randomUUID()}`, f.stemcell, {}, net, [], {}];
    case 'set_vm_metadata':
      return [f.vm, { name: 'x' }];
    case 'calculate_vm_cloud_properties':
      return [{ cpu: 1, ram: 512, ephemeral_disk_size: 1024 }];
    case 'create_disk':
      return [16, {}, f.vm];
    case 'attach_disk':
    case 'detach_disk':
      return [f.vm, f.disk];
    case 'set_disk_metadata':
      return [f.disk, { name: 'x' }];
    case 'resize_disk':
      return [f.disk, 32];
    case 'update_disk':
      return [f.disk, 32, {}];
    case 'snapshot_disk':
      return [f.disk, {}];
    case 'delete_snapshot':
      return [`snap-${randomUUID()}`];
    case 'delete_disk':
    case 'has_disk':
      return [f.disk];
    default:
      return [f.vm];
  }
}

function evilIds(suite: Suite): string[] {
  const canary = basename(suite.canaryDir);
  const m = suite.pwnedMarker;
  return [
    '../../etc',
    '../../../../../../etc/passwd',
    `../../${canary}/victim`,
    `../${canary}/victim`,
    `../../../${canary}/victim`,
    `${suite.canaryDir}/victim`,
    '/etc',
    '$(reboot)',
    '`reboot`',
    '; rm -rf /',
    `$(touch ${m})`,
    `\`touch ${m}\``,
    `x;touch ${m}`,
    `x && touch ${m}`,
    `x | touch ${m}`,
    `x\ntouch ${m}`,
    `disk-00000000-0000-0000-0000-000000000000$(touch ${m})`,
    "x' OR '1'='1",
    '--help',
    '-rf',
    '*',
    '.',
    '..',
    '%2e%2e%2fetc',
    'vm-\u202e\u0000evil',
    'a'.repeat(4096),
  ];
}

/** The corpus: at least 200 malformed requests. */
export function corpus(suite: Suite, f: Fixture, cpi: Cpi): Case[] {
  const cases: Case[] = [];
  const req = (method: string, args: unknown[], extra: Record<string, unknown> = {}) =>
    cpi.requestText(method, args, { extra });
  const add = (name: string, input: string | Buffer, expect: Expect) => cases.push({ name, input, expect });

  // Envelope: not JSON, not an object, missing or mistyped fields.
  const valid = req('has_vm', [f.vm]);
  for (const [name, input] of [
    ['empty input', ''],
    ['only whitespace', ' \n\t '],
    ['a lone brace', '{'],
    ['a closing brace', '}'],
    ['JSON null', 'null'],
    ['JSON true', 'true'],
    ['a number', '42'],
    ['a string', '"has_vm"'],
    ['an empty array', '[]'],
    ['an array of requests', `[${valid}]`],
    ['two requests back to back', `${valid}${valid}`],
    ['trailing garbage', `${valid}x`],
    ['single quotes', valid.replace(/"/g, "'")],
    ['a comment', `// request\n${valid}`],
    ['NaN literal', '{"method":"has_vm","arguments":[NaN],"context":{"director_uuid":"x"}}'],
    ['unquoted key', '{method:"has_vm","arguments":[],"context":{}}'],
    ['NUL bytes', `\u0000${valid}`],
    ['an empty object', '{}'],
    ['no method', '{"arguments":[],"context":{"director_uuid":"x"}}'],
    ['no arguments', '{"method":"delete_vm","context":{"director_uuid":"x"}}'],
    ['method is a number', '{"method":42,"arguments":[],"context":{}}'],
    ['method is null', '{"method":null,"arguments":[],"context":{}}'],
    ['method is empty', '{"method":"","arguments":[],"context":{}}'],
    ['method is a list', '{"method":["delete_vm"],"arguments":[],"context":{}}'],
    ['arguments is an object', '{"method":"delete_vm","arguments":{"0":"vm-1"},"context":{}}'],
    ['arguments is a string', '{"method":"delete_vm","arguments":"vm-1","context":{}}'],
    ['arguments is null', '{"method":"delete_vm","arguments":null,"context":{}}'],
    ['context is a string', '{"method":"delete_vm","arguments":["vm-1"],"context":"ctx"}'],
    ['context is a list', '{"method":"delete_vm","arguments":["vm-1"],"context":[]}'],
    [
      'director_uuid is a number',
      '{"method":"delete_vm","arguments":["vm-1"],"context":{"director_uuid":42}}',
    ],
    [
      'request_id is an object',
      '{"method":"delete_vm","arguments":["vm-1"],"context":{"director_uuid":"x","request_id":{}}}',
    ],
    [
      'api_version is a string',
      '{"method":"delete_vm","arguments":["vm-1"],"context":{"director_uuid":"x"},"api_version":"2"}',
    ],
    [
      'api_version is fractional',
      '{"method":"delete_vm","arguments":["vm-1"],"context":{"director_uuid":"x"},"api_version":2.5}',
    ],
    [
      'api_version is negative',
      '{"method":"delete_vm","arguments":["vm-1"],"context":{"director_uuid":"x"},"api_version":-1}',
    ],
    [
      'api_version is zero',
      '{"method":"delete_vm","arguments":["vm-1"],"context":{"director_uuid":"x"},"api_version":0}',
    ],
    ['deep nesting', `${'['.repeat(200_000)}${']'.repeat(200_000)}`],
  ] as const)
    add(`envelope: ${name}`, input, CPI_ERROR);
  add('envelope: api_version far above any CPI', req('has_vm', [f.vm], { api_version: 999 }), ANY);

  // Truncated requests, at many cut points.
  const long = req('create_vm', validArgs('create_vm', f, suite));
  for (const frac of [0.02, 0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 0.97, 0.995])
    add(
      `truncated create_vm request at ${Math.round(frac * 1000) / 10}%`,
      long.slice(0, Math.floor(long.length * frac)),
      CPI_ERROR,
    );

  // Bytes that are not UTF-8.
  const bytes = (prefix: string, bad: number[], suffix: string) =>
    Buffer.concat([Buffer.from(prefix), Buffer.from(bad), Buffer.from(suffix)]);
  add(
    'non-UTF-8: 0xff in a CID',
    bytes('{"method":"delete_vm","arguments":["vm-', [0xff, 0xfe], '"],"context":{}}'),
    CPI_ERROR,
  );
  add(
    'non-UTF-8: overlong slash',
    bytes('{"method":"delete_disk","arguments":["..', [0xc0, 0xaf], 'etc"],"context":{}}'),
    CPI_ERROR,
  );
  add(
    'non-UTF-8: lone surrogate',
    bytes('{"method":"has_disk","arguments":["', [0xed, 0xa0, 0x80], '"],"context":{}}'),
    CPI_ERROR,
  );
  add(
    'non-UTF-8: in the method name',
    bytes('{"method":"delete_', [0x80], 'vm","arguments":[],"context":{}}'),
    CPI_ERROR,
  );
  add(
    'non-UTF-8: Latin-1 text',
    bytes('{"method":"set_vm_metadata","arguments":["x",{"n":"', [0xe9, 0xe8], '"}],"context":{}}'),
    CPI_ERROR,
  );

  // Huge input: more than 16 MiB must be refused without hanging.
  add(
    'huge input (17 MiB)',
    `{"method":"delete_vm","arguments":["${'A'.repeat(17 * 1024 * 1024)}"],"context":{"director_uuid":"x"}}`,
    ANY,
  );

  // Wrong types for every argument of every method; the other arguments are valid and real.
  for (const [method, kinds] of Object.entries(SIGNATURES)) {
    kinds.forEach((kind, i) => {
      for (const wrong of WRONG[kind]) {
        const args = validArgs(method, f, suite);
        args[i] = wrong;
        add(
          `wrong type: ${method} argument ${i + 1} (${kind}) = ${short(wrong, 60)}`,
          req(method, args),
          ANY,
        );
      }
    });
    // Too few arguments.
    const required = REQUIRED[method] ?? kinds.length;
    for (let n = 0; n < required; n++)
      add(
        `missing argument: ${method} with ${n} of ${required}`,
        req(method, validArgs(method, f, suite).slice(0, n)),
        ANY,
      );
  }
  // Wrong types inside nested arguments.
  add(
    'wrong type: create_vm networks entry is a string',
    req('create_vm', [`agent-${randomUUID()}`, f.stemcell, {}, { default: 'manual' }, [], {}]),
    ANY,
  );
  add(
    'wrong type: create_vm network type unknown',
    req('create_vm', [
      `agent-${randomUUID()}`,
      f.stemcell,
      {},
      { default: { type: 'bogus', cloud_properties: {} } },
      [],
      {},
    ]),
    ANY,
  );
  add(
    'wrong type: create_vm network ip is a number',
    req('create_vm', [
      `agent-${randomUUID()}`,
      f.stemcell,
      {},
      { default: { type: 'manual', ip: 10, netmask: '255.255.255.0', cloud_properties: {} } },
      [],
      {},
    ]),
    ANY,
  );
  add(
    'wrong type: create_vm disk_cids holds a number',
    req('create_vm', [`agent-${randomUUID()}`, f.stemcell, {}, suite.addresses.spare(), [42], {}]),
    ANY,
  );
  add(
    'wrong type: metadata value is an object',
    req('set_vm_metadata', [f.vm, { name: { nested: true } }]),
    ANY,
  );
  add('wrong type: create_disk size too large for any host', req('create_disk', [2 ** 53, {}, null]), ANY);

  // Empty strings.
  for (const [method, kinds] of Object.entries(SIGNATURES)) {
    kinds.forEach((kind, i) => {
      if (kind !== 'cid' && kind !== 'str') return;
      const args = validArgs(method, f, suite);
      args[i] = '';
      add(`empty string: ${method} argument ${i + 1}`, req(method, args), ANY);
    });
  }

  // IDs that name another kind of resource (or something that is not the CPI's).
  const cross: Array<[string, string, unknown[], Expect]> = [
    ['delete_vm of the disk CID', 'delete_vm', [f.disk], VM_NOT_FOUND],
    ['delete_vm of the snapshot CID', 'delete_vm', [f.snap], VM_NOT_FOUND],
    ['delete_vm of the stemcell CID', 'delete_vm', [f.stemcell], VM_NOT_FOUND],
    ['delete_vm of the VM agent ID', 'delete_vm', [f.vmAgent], VM_NOT_FOUND],
    ['delete_disk of the VM CID', 'delete_disk', [f.vm], DISK_NOT_FOUND],
    ['delete_disk of the snapshot CID', 'delete_disk', [f.snap], DISK_NOT_FOUND],
    ['delete_disk of the stemcell CID', 'delete_disk', [f.stemcell], DISK_NOT_FOUND],
    ['has_vm of the disk CID', 'has_vm', [f.disk], FALSE_OR_ERROR],
    ['has_vm of the snapshot CID', 'has_vm', [f.snap], FALSE_OR_ERROR],
    ['has_disk of the VM CID', 'has_disk', [f.vm], FALSE_OR_ERROR],
    ['has_disk of the snapshot CID', 'has_disk', [f.snap], FALSE_OR_ERROR],
    ['attach_disk with VM and disk swapped', 'attach_disk', [f.disk, f.vm], ANY],
    ['detach_disk with VM and disk swapped', 'detach_disk', [f.disk, f.vm], ANY],
    ['get_disks of the disk CID', 'get_disks', [f.disk], ANY],
    ['reboot_vm of the disk CID', 'reboot_vm', [f.disk], ANY],
    ['snapshot_disk of the VM CID', 'snapshot_disk', [f.vm, {}], ANY],
    ['resize_disk of the VM CID', 'resize_disk', [f.vm, 128], ANY],
    ['set_disk_metadata of the VM CID', 'set_disk_metadata', [f.vm, { a: 'b' }], ANY],
    ['set_vm_metadata of the disk CID', 'set_vm_metadata', [f.disk, { a: 'b' }], ANY],
    ['delete_snapshot of the disk CID', 'delete_snapshot', [f.disk], NULL_OR_ERROR],
    ['delete_snapshot of the VM CID', 'delete_snapshot', [f.vm], NULL_OR_ERROR],
    ['delete_stemcell of the VM CID', 'delete_stemcell', [f.vm], NULL_OR_ERROR],
    ['delete_stemcell of the disk CID', 'delete_stemcell', [f.disk], NULL_OR_ERROR],
    ['create_disk from the disk CID as snapshot', 'create_disk', [16, { snapshot_cid: f.disk }, null], ANY],
    ['create_disk from the VM CID as snapshot', 'create_disk', [16, { snapshot_cid: f.vm }, null], ANY],
    [
      'create_vm from the disk CID as stemcell',
      'create_vm',
      [`agent-${randomUUID()}`, f.disk, {}, suite.addresses.spare(), [], {}],
      ANY,
    ],
    [
      'create_vm from the snapshot CID as stemcell',
      'create_vm',
      [`agent-${randomUUID()}`, f.snap, {}, suite.addresses.spare(), [], {}],
      ANY,
    ],
  ];
  if (suite.isDocker) {
    cross.push(
      ['delete_vm of the VM container ID', 'delete_vm', [f.container], VM_NOT_FOUND],
      ['delete_vm of the VM container short ID', 'delete_vm', [f.container.slice(0, 12)], VM_NOT_FOUND],
      [
        'delete_vm of the helper container name',
        'delete_vm',
        [f.helperName || 'bosh-cpi-helper'],
        VM_NOT_FOUND,
      ],
      ['reboot_vm of the VM container ID', 'reboot_vm', [f.container], ANY],
      [
        'create_vm from a raw image name',
        'create_vm',
        [`agent-${randomUUID()}`, f.helperImage || 'bosh-cpi-helper:1', {}, suite.addresses.spare(), [], {}],
        ANY,
      ],
    );
  }
  for (const [name, method, args, expect] of cross) add(`cross-kind ID: ${name}`, req(method, args), expect);

  // Path traversal and shell metacharacters, on every method that turns an ID into a path or a command.
  for (const evil of evilIds(suite)) {
    const tag = short(evil, 40);
    add(`hostile ID ${tag}: delete_vm`, req('delete_vm', [evil]), VM_NOT_FOUND);
    add(`hostile ID ${tag}: delete_disk`, req('delete_disk', [evil]), DISK_NOT_FOUND);
    add(`hostile ID ${tag}: has_disk`, req('has_disk', [evil]), FALSE_OR_ERROR);
    add(`hostile ID ${tag}: has_vm`, req('has_vm', [evil]), FALSE_OR_ERROR);
    add(`hostile ID ${tag}: attach_disk`, req('attach_disk', [f.vm, evil]), ANY);
    add(`hostile ID ${tag}: detach_disk`, req('detach_disk', [f.vm, evil]), ANY);
    add(`hostile ID ${tag}: delete_snapshot`, req('delete_snapshot', [evil]), NULL_OR_ERROR);
    add(
      `hostile ID ${tag}: create_disk from it as snapshot`,
      req('create_disk', [16, { snapshot_cid: evil }, null]),
      ANY,
    );
    add(`hostile ID ${tag}: resize_disk`, req('resize_disk', [evil, 64]), ANY);
  }

  // Unknown fields never rescue or change a request that must fail.
  add(
    'unknown top-level field on delete_vm of a missing VM',
    req('delete_vm', [`vm-${randomUUID()}`], { x_unknown: { a: 1 } }),
    VM_NOT_FOUND,
  );
  add(
    'unknown top-level fields on delete_disk of a missing disk',
    req('delete_disk', [`disk-${randomUUID()}`], { zzz: 1, method2: 'delete_vm' }),
    DISK_NOT_FOUND,
  );
  add(
    'unknown context field on delete_vm of a missing VM',
    cpi.requestText('delete_vm', [`vm-${randomUUID()}`], {
      context: { x_unknown_property: 'v', vm: { stemcell: { api_version: 3 }, extra: 1 } },
    }),
    VM_NOT_FOUND,
  );
  add(
    'unknown field in a network spec, missing stemcell',
    req('create_vm', [
      `agent-${randomUUID()}`,
      `stemcell-${randomUUID()}`,
      {},
      {
        n: {
          type: 'manual',
          ip: `${suite.subnetPrefix}9`,
          netmask: '255.255.255.0',
          nic_group: '1',
          bogus: [1],
          cloud_properties: {},
        },
      },
      [],
      {},
    ]),
    ANY,
  );
  add(
    'unknown field beside a wrong type in calculate_vm_cloud_properties',
    req('calculate_vm_cloud_properties', [{ cpu: 'x', ram: 1, ephemeral_disk_size: 1, gpu: 4 }]),
    ANY,
  );
  add(
    'unknown field in cloud_properties of detach of a missing disk',
    req('detach_disk', [f.vm, `disk-${randomUUID()}`], { cloud_properties: { a: 1 } }),
    ANY,
  );
  return cases;
}
