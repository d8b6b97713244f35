import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CpiFailure } from '../../src/rpc/errors.ts';
import { MAX_REQUEST_BYTES, parseRequest, stemcellApiVersion } from '../../src/rpc/request.ts';

const bytes = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value));

function failureOf(input: Buffer): CpiFailure {
  try {
    parseRequest(input);
  } catch (e) {
    assert.ok(e instanceof CpiFailure, `expected a CpiFailure, got ${String(e)}`);
    return e;
  }
  assert.fail(`parseRequest accepted ${input.toString('utf8').slice(0, 80)}`);
}

describe('requests that parse', () => {
  test('a Director request keeps method, arguments, context and api_version', () => {
    const context = {
      director_uuid: 'u',
      request_id: 'cpi-1',
      vm: { stemcell: { api_version: 3 } },
      host: 'h',
    };
    const request = parseRequest(bytes({ method: 'delete_disk', arguments: ['d'], context, api_version: 2 }));
    assert.deepEqual(request, { method: 'delete_disk', arguments: ['d'], context, apiVersion: 2 });
  });

  test('a missing api_version means 1', () => {
    assert.equal(parseRequest(bytes({ method: 'info', arguments: [], context: {} })).apiVersion, 1);
  });

  test('a missing context is treated as empty, and request_id and vm may be absent', () => {
    assert.deepEqual(parseRequest(bytes({ method: 'info', arguments: [] })).context, {});
    assert.deepEqual(
      parseRequest(bytes({ method: 'info', arguments: [], context: { director_uuid: 'u' } })).context,
      {
        director_uuid: 'u',
      },
    );
  });

  test('surrounding whitespace and a trailing newline are accepted', () => {
    assert.equal(
      parseRequest(bytes(`\n  ${JSON.stringify({ method: 'info', arguments: [] })}\n`)).method,
      'info',
    );
  });

  test('stemcellApiVersion reads context.vm.stemcell.api_version and ignores anything else', () => {
    assert.equal(stemcellApiVersion({ vm: { stemcell: { api_version: 3 } } }), 3);
    assert.equal(stemcellApiVersion({ vm: { stemcell: {} } }), undefined);
    assert.equal(stemcellApiVersion({}), undefined);
    assert.equal(
      stemcellApiVersion({ vm: { stemcell: { api_version: '3' as unknown as number } } }),
      undefined,
    );
  });
});

describe('requests that are CpiErrors', () => {
  const cases: Array<{ name: string; input: Buffer; message: RegExp }> = [
    { name: 'malformed JSON', input: bytes('{"method": "info", '), message: /not valid JSON/ },
    { name: 'garbage', input: bytes('hello'), message: /not valid JSON/ },
    { name: 'empty input', input: Buffer.alloc(0), message: /empty/ },
    { name: 'only whitespace', input: bytes(' \n\t '), message: /empty/ },
    {
      name: 'non-UTF-8 bytes',
      input: Buffer.concat([
        bytes('{"method":"info","arguments":["'),
        Buffer.from([0xff, 0xfe]),
        bytes('"]}'),
      ]),
      message: /not valid UTF-8/,
    },
    { name: 'a JSON array', input: bytes([{ method: 'info' }]), message: /must be a JSON object/ },
    { name: 'JSON null', input: bytes('null'), message: /must be a JSON object/ },
    { name: 'a JSON string', input: bytes('"info"'), message: /must be a JSON object/ },
    { name: 'a missing method', input: bytes({ arguments: [] }), message: /string 'method'/ },
    { name: 'an empty method', input: bytes({ method: '', arguments: [] }), message: /string 'method'/ },
    { name: 'a numeric method', input: bytes({ method: 7, arguments: [] }), message: /string 'method'/ },
    {
      name: 'missing arguments',
      input: bytes({ method: 'info' }),
      message: /'info' must have an array 'arguments'/,
    },
    {
      name: 'object arguments',
      input: bytes({ method: 'has_vm', arguments: { vm_cid: 'x' } }),
      message: /'has_vm' must have an array 'arguments'/,
    },
    {
      name: 'null arguments',
      input: bytes({ method: 'info', arguments: null }),
      message: /array 'arguments'/,
    },
    {
      name: 'a string context',
      input: bytes({ method: 'info', arguments: [], context: 'ctx' }),
      message: /'context' that is not an object/,
    },
    {
      name: 'a null context',
      input: bytes({ method: 'info', arguments: [], context: null }),
      message: /'context' that is not an object/,
    },
    {
      name: 'an array context',
      input: bytes({ method: 'info', arguments: [], context: [] }),
      message: /'context' that is not an object/,
    },
    {
      name: 'a numeric director_uuid',
      input: bytes({ method: 'info', arguments: [], context: { director_uuid: 1 } }),
      message: /director_uuid that is not a string/,
    },
    {
      name: 'a numeric request_id',
      input: bytes({ method: 'info', arguments: [], context: { request_id: 1 } }),
      message: /request_id that is not a string/,
    },
    {
      name: 'a string api_version',
      input: bytes({ method: 'info', arguments: [], api_version: '2' }),
      message: /api_version that is not a positive integer/,
    },
    {
      name: 'api_version 0',
      input: bytes({ method: 'info', arguments: [], api_version: 0 }),
      message: /api_version that is not a positive integer/,
    },
    {
      name: 'a fractional api_version',
      input: bytes({ method: 'info', arguments: [], api_version: 2.5 }),
      message: /api_version that is not a positive integer/,
    },
  ];
  for (const c of cases) {
    test(`${c.name} is a Bosh::Clouds::CpiError`, () => {
      const failure = failureOf(c.input);
      assert.equal(failure.type, 'Bosh::Clouds::CpiError');
      assert.equal(failure.okToRetry, false);
      assert.match(failure.message, c.message);
    });
  }

  test('a malformed request does not quote its own text (it may hold env.bosh.password)', () => {
    const failure = failureOf(
      bytes('{"method":"create_vm","arguments":[{"bosh":{"password": Sup3rS3cretValue}}]}'),
    );
    assert.match(failure.message, /^Request is not valid JSON: Unexpected token/);
    assert.ok(!failure.message.includes('Sup3r'), failure.message);
  });

  test('a request over the size limit is a CpiError', () => {
    const failure = failureOf(Buffer.alloc(MAX_REQUEST_BYTES + 1, 0x20));
    assert.equal(failure.type, 'Bosh::Clouds::CpiError');
    assert.match(failure.message, /bytes/);
  });
});

describe('api_version above what the CPI implements', () => {
  for (const apiVersion of [4, 99]) {
    test(`api_version ${apiVersion} is NotImplemented naming the requested and supported versions`, () => {
      const failure = failureOf(bytes({ method: 'create_vm', arguments: [], api_version: apiVersion }));
      assert.equal(failure.type, 'Bosh::Clouds::NotImplemented');
      assert.equal(failure.message, `CPI API version requested is '${apiVersion}', max supported is '3'`);
    });
  }

  test('api_version 3 is accepted', () => {
    assert.equal(parseRequest(bytes({ method: 'info', arguments: [], api_version: 3 })).apiVersion, 3);
  });
});
