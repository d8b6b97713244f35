import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Logger } from '../../src/log/logger.ts';
import { Redactor } from '../../src/log/redact.ts';
import { cloudError } from '../../src/rpc/errors.ts';
import { errorResponse } from '../../src/rpc/response.ts';

const PEM = [
  '-----BEGIN RSA PRIVATE KEY-----',
  'MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun',
  'VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK',
  '-----END RSA PRIVATE KEY-----',
].join('\n');

function redactorThatLearned(value: unknown): Redactor {
  const redactor = new Redactor();
  redactor.learn(value);
  return redactor;
}

describe('what the redactor learns', () => {
  for (const key of [
    'password',
    'secret',
    'token',
    'private_key',
    'client_secret',
    'api_token',
    'access_key',
  ]) {
    test(`a value under a key named ${key} is redacted wherever it appears`, () => {
      const redactor = redactorThatLearned({ nested: { [key]: 'Sup3r-Secret-Value' } });
      assert.equal(
        redactor.redact('connecting with Sup3r-Secret-Value now'),
        'connecting with <redacted> now',
      );
    });
  }

  test('values under ordinary keys are not learned', () => {
    const redactor = redactorThatLearned({ host: 'docker.example.com', name: 'vm-1234' });
    assert.equal(redactor.redact('docker.example.com vm-1234'), 'docker.example.com vm-1234');
  });

  test('every string inside a secret-named object or array is learned', () => {
    const redactor = redactorThatLearned({
      credentials: { user: 'admin-user', list: ['alpha-key-1', 'beta-key-2'] },
    });
    assert.equal(redactor.redact('admin-user alpha-key-1 beta-key-2'), '<redacted> <redacted> <redacted>');
  });

  test('env.bosh.password from create_vm arguments is redacted', () => {
    const crypted =
      '$6$4gDD3aV0rdqlrKC$2axHCxGKIObs6tAmMTqYCspcdvQXh3JJcvWOY2WGb4SrdXtnCyNaWlrf3WEqvYR2MYizEGp3kMmbpwBC6jsHt0';
    const redactor = redactorThatLearned([
      'agent-1',
      'stemcell-1',
      {},
      {},
      [],
      { bosh: { password: crypted } },
    ]);
    assert.equal(
      redactor.redact(`settings: {"env":{"bosh":{"password":"${crypted}"}}}`),
      'settings: {"env":{"bosh":{"password":"<redacted>"}}}',
    );
  });

  test('a password inside a URL is learned, so it is redacted even outside the URL', () => {
    const redactor = redactorThatLearned({ agent: { mbus: 'nats://nats:N4tsPassw0rd@10.0.0.6:4222' } });
    assert.equal(redactor.redact('auth failed for N4tsPassw0rd'), 'auth failed for <redacted>');
  });

  test('a PEM private key is learned, under any key name', () => {
    const redactor = redactorThatLearned({ tls: { key_material: PEM } });
    assert.equal(redactor.redact(`loaded ${PEM}`), 'loaded <redacted private key>');
  });

  test('secrets shorter than 4 characters are not learned (they would redact ordinary words)', () => {
    const redactor = redactorThatLearned({ password: '*', token: 'abc' });
    assert.equal(redactor.redact('a * abc'), 'a * abc');
  });
});

describe('what the redactor removes without learning', () => {
  const redactor = new Redactor();

  for (const url of [
    'nats://nats:s3cr3t@10.0.0.6:4222',
    'https://mbus:s3cr3t@0.0.0.0:6868',
    'tcp://admin:s3cr3t@docker.example.com:2376',
  ]) {
    test(`the password in ${url.split(':')[0]}:// URLs is redacted`, () => {
      const out = redactor.redact(`mbus is ${url}, fine`);
      assert.ok(!out.includes('s3cr3t'), out);
      assert.match(out, /:\/\/[a-z]+:<redacted>@/);
    });
  }

  test('a URL without a password is left alone', () => {
    assert.equal(
      redactor.redact('unix:///var/run/docker.sock tcp://h:2376'),
      'unix:///var/run/docker.sock tcp://h:2376',
    );
  });

  test('any PEM private key block is redacted, EC and PKCS#8 alike', () => {
    for (const kind of ['EC PRIVATE KEY', 'PRIVATE KEY', 'ENCRYPTED PRIVATE KEY']) {
      const block = `-----BEGIN ${kind}-----\nMHcCAQEEIBkg\n-----END ${kind}-----`;
      assert.equal(redactor.redact(`key: ${block} end`), 'key: <redacted private key> end');
    }
  });

  test('a certificate (public) is not redacted', () => {
    const cert = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----';
    assert.equal(redactor.redact(cert), cert);
  });
});

describe('JSON-escaped and encoded forms', () => {
  test('a learned secret with quotes and backslashes is redacted in its JSON-escaped form', () => {
    const secret = 'pa"ss\\word\twith-specials';
    const redactor = redactorThatLearned({ password: secret });
    const line = JSON.stringify({ password: secret });
    assert.ok(!line.includes(secret), 'the escaped form differs from the raw one');
    assert.equal(redactor.redact(line), '{"password":"<redacted>"}');
  });

  test('a PEM private key is redacted in its JSON-escaped form (\\n instead of newlines)', () => {
    const redactor = new Redactor();
    const line = JSON.stringify({ tls: { private_key: PEM } });
    const out = redactor.redact(line);
    assert.ok(!out.includes('MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun'), out);
    assert.equal(out, '{"tls":{"private_key":"<redacted private key>"}}');
  });

  test('a learned secret is redacted in its URL-encoded form', () => {
    const redactor = redactorThatLearned({ token: 'a/b+c=d&e' });
    assert.equal(redactor.redact('?token=a%2Fb%2Bc%3Dd%26e'), '?token=<redacted>');
  });

  test('a secret that contains another secret is redacted whole', () => {
    const redactor = redactorThatLearned({ password: 'hunter', secret: 'hunter2-and-more' });
    assert.equal(redactor.redact('x hunter2-and-more y hunter z'), 'x <redacted> y <redacted> z');
  });
});

describe('the logger', () => {
  function capture(redactor = new Redactor()) {
    const stderr: string[] = [];
    const logger = new Logger('cpi-42', redactor, (line) => stderr.push(line));
    return { logger, stderr };
  }

  test('each line carries the request id, the method and the level, on stderr and in the log text', () => {
    const { logger, stderr } = capture();
    logger.method = 'create_vm';
    logger.info('creating');
    assert.equal(stderr.length, 1);
    assert.match(stderr[0] ?? '', /^\d{4}-\d\d-\d\dT\S+Z \[req_id cpi-42\] \[create_vm\] INFO creating$/);
    assert.equal(logger.text(), `${stderr[0]}\n`);
  });

  test('lines are redacted before they reach stderr or the log text', () => {
    const { logger, stderr } = capture(redactorThatLearned({ password: 'Top-Secret-42' }));
    logger.debug('using Top-Secret-42 and nats://n:InUrl99@h:4222');
    for (const text of [stderr.join('\n'), logger.text()]) {
      assert.ok(!text.includes('Top-Secret-42'), text);
      assert.ok(!text.includes('InUrl99'), text);
    }
  });

  test('trace lines go to stderr only, redacted, and never into the log text', () => {
    const { logger, stderr } = capture(redactorThatLearned({ token: 'Trace-Token-77' }));
    logger.trace('Error: failed with Trace-Token-77\n    at frame (file.ts:1:2)');
    assert.equal(stderr.length, 1);
    assert.match(stderr[0] ?? '', /DEBUG Error: failed with <redacted>\n {4}at frame/);
    assert.equal(logger.text(), '');
  });

  test('the log text is bounded and says how many early lines were dropped', () => {
    const { logger, stderr } = capture();
    const long = 'x'.repeat(1000);
    for (let i = 0; i < 200; i++) logger.debug(`${i} ${long}`);
    const text = logger.text();
    assert.ok(text.length <= 70 * 1024, `${text.length} bytes`);
    assert.match(text, /^\(\d+ earlier lines dropped\)\n/);
    assert.match(text, /199 x+\n$/);
    assert.equal(stderr.length, 200, 'stderr keeps every line');
  });
});

test('an error response has its message redacted', () => {
  const redactor = redactorThatLearned({ secret: 'Bucket-Secret-9' });
  const response = errorResponse(
    cloudError('upload to https://u:pw123456@s3 with Bucket-Secret-9 failed'),
    '',
    redactor.redact,
  );
  assert.equal(response.error?.message, 'upload to https://u:<redacted>@s3 with <redacted> failed');
});
