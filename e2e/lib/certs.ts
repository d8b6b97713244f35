import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runOk } from './util.ts';

export interface KeyPair {
  certificate: string;
  privateKey: string;
  certPath: string;
  keyPath: string;
}

export interface Ca extends KeyPair {}

/** A throw-away CA made with openssl (keys 0600). */
export async function makeCa(dir: string, name: string): Promise<Ca> {
  const keyPath = join(dir, `${name}.key`);
  const certPath = join(dir, `${name}.crt`);
  await runOk('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
    '-keyout',
    keyPath,
    '-out',
    certPath,
  ]);
  chmodSync(keyPath, 0o600);
  return {
    keyPath,
    certPath,
    certificate: readFileSync(certPath, 'utf8'),
    privateKey: readFileSync(keyPath, 'utf8'),
  };
}

/** A certificate signed by `ca` for server and client use, with the given common name and IP SANs. */
export async function makeCert(
  dir: string,
  name: string,
  ca: Ca,
  commonName: string,
  ips: string[],
): Promise<KeyPair> {
  const keyPath = join(dir, `${name}.key`);
  const certPath = join(dir, `${name}.crt`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  const san = [`DNS:${commonName}`, ...ips.map((ip) => `IP:${ip}`)].join(',');
  writeFileSync(
    ext,
    `subjectAltName=${san}\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n`,
  );
  await runOk('openssl', [
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    `/CN=${commonName}`,
    '-keyout',
    keyPath,
    '-out',
    csr,
  ]);
  chmodSync(keyPath, 0o600);
  await runOk('openssl', [
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca.certPath,
    '-CAkey',
    ca.keyPath,
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    ext,
    '-out',
    certPath,
  ]);
  return {
    keyPath,
    certPath,
    certificate: readFileSync(certPath, 'utf8'),
    privateKey: readFileSync(keyPath, 'utf8'),
  };
}

/** The agent's HTTPS mbus certificate (server side, `env.bosh.mbus.cert`) and a CA of its own. */
export async function agentMbusCertificate(
  dir: string,
  ips: string[] = [],
): Promise<{ ca: string; certificate: string; private_key: string }> {
  const ca = await makeCa(dir, 'mbus-ca');
  const agent = await makeCert(dir, 'agent', ca, 'agent', ips);
  return { ca: ca.certificate, certificate: agent.certificate, private_key: agent.privateKey };
}
