import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  BUILT_SOURCES,
  blobsYml,
  CPI_PACKAGE,
  devBunVersion,
  layOutRelease,
  RELEASE_DIR,
  RUNTIME_BLOB,
  RUNTIME_PIN,
  sha256File,
  verifyRuntimeTarball,
} from '../../scripts/release.ts';
import { dockerPropertiesCheck, loadTls, parseDockerProperties } from '../../src/backends/docker/config.ts';
import { BACKENDS } from '../../src/backends/registry.ts';
import { parseConfig } from '../../src/config/config.ts';
import {
  compilePackages,
  filesUnder,
  globMatcher,
  installJob,
  JOB,
  JOB_DIR,
  jobSpec,
  loadYaml,
  packageFiles,
  packageNames,
  packageSpec,
  removeTmp,
  renderedConfig,
  renderJob,
  runWrapper,
  tmp,
} from './support.ts';

const PEM = (label: string) =>
  `-----BEGIN ${label}-----\nMIIBsample${label.replace(/ /g, '')}\n-----END ${label}-----\n`;
const TLS = { ca: PEM('CERTIFICATE'), certificate: PEM('CERTIFICATE'), private_key: PEM('RSA PRIVATE KEY') };
const DIRECTOR_MBUS = 'nats://10.245.0.10:4222';
/** What the Director's PATH holds when it spawns a CPI: a system node may well be on it. */
const DIRECTOR_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';
const INFO = { method: 'info', arguments: [], context: { director_uuid: 'director-1' }, api_version: 1 };

/** CPI options with no default, so absent from dockerPropertiesCheck({}). */
const DOCKER_OPTIONS_WITHOUT_DEFAULT = [
  'allowed_networks',
  'api_version',
  'start_command',
  'tls.ca',
  'tls.certificate',
  'tls.private_key',
];

before(() => {
  // Builds the bundle and places the bun blob; served from .cache/ or npm's cache when offline.
  layOutRelease();
});
after(removeTmp);

describe('release layout', () => {
  test('the job spec lists every template file, and every template it lists exists', () => {
    const listed = Object.keys(jobSpec().templates).sort();
    assert.deepEqual(listed, readdirSync(join(JOB_DIR, 'templates')).sort());
    assert.deepEqual(jobSpec().templates, { 'cpi.erb': 'bin/cpi', 'cpi.json.erb': 'config/cpi.json' });
    assert.ok(existsSync(join(JOB_DIR, 'monit')), 'a job needs a monit file, even an empty one');
  });

  test('every file in src/ and blobs/ belongs to a package, and every package spec entry matches a file', () => {
    const claimed = new Set<string>();
    for (const name of packageNames()) {
      const spec = packageSpec(name);
      assert.equal(spec.name, name, `packages/${name}/spec names itself '${spec.name}'`);
      assert.ok(
        existsSync(join(RELEASE_DIR, 'packages', name, 'packaging')),
        `packages/${name}/packaging is missing`,
      );
      const files = packageFiles(spec);
      for (const glob of spec.files) {
        // bosh create-release fails with "Missing files for pattern" otherwise.
        assert.ok(
          [...files.keys()].some((f) => globMatcher(glob).test(f)),
          `${name}: '${glob}' matches nothing in src/ or blobs/`,
        );
      }
      for (const file of files.keys()) claimed.add(file);
    }
    const present = [...filesUnder(join(RELEASE_DIR, 'src')), ...filesUnder(join(RELEASE_DIR, 'blobs'))];
    assert.deepEqual(
      present.filter((f) => !claimed.has(f)),
      [],
      'files no package spec names',
    );
    for (const built of BUILT_SOURCES) assert.ok(claimed.has(built), `${built} is built but not packaged`);
  });

  test('the job needs every package of the release, and package dependencies exist', () => {
    assert.deepEqual([...jobSpec().packages].sort(), packageNames());
    for (const name of packageNames())
      for (const dep of packageSpec(name).dependencies ?? [])
        assert.ok(packageNames().includes(dep), `${name} -> ${dep}`);
  });

  test('blobs.yml records the pinned bun tarball, and blobs/ holds exactly that file', () => {
    assert.equal(readFileSync(join(RELEASE_DIR, 'config', 'blobs.yml'), 'utf8'), blobsYml());
    const blobs = loadYaml<Record<string, { size: number; sha: string }>>(
      join(RELEASE_DIR, 'config', 'blobs.yml'),
    );
    assert.deepEqual(Object.keys(blobs), [RUNTIME_BLOB]);
    assert.deepEqual(filesUnder(join(RELEASE_DIR, 'blobs')), [RUNTIME_BLOB]);
    const blob = join(RELEASE_DIR, 'blobs', RUNTIME_BLOB);
    assert.equal(blobs[RUNTIME_BLOB]?.sha, `sha256:${sha256File(blob)}`);
    assert.equal(blobs[RUNTIME_BLOB]?.size, RUNTIME_PIN.size);
    assert.ok(packageSpec(CPI_PACKAGE).files.includes(RUNTIME_BLOB));
    assert.ok(
      readFileSync(join(RELEASE_DIR, 'packages', CPI_PACKAGE, 'packaging'), 'utf8').includes(RUNTIME_BLOB),
      `packages/${CPI_PACKAGE}/packaging unpacks ${RUNTIME_BLOB}`,
    );
  });

  test('a bun tarball that is not the pinned one is rejected', () => {
    const dir = tmp('pin');
    const wrongSize = join(dir, 'short.tgz');
    writeFileSync(wrongSize, 'not bun');
    assert.throws(
      () => verifyRuntimeTarball(wrongSize),
      /7 bytes, but @oven\/bun-linux-x64@1\.4\.5 is 51946454 bytes/,
    );
    const sameSize = join(dir, 'same-size.tgz');
    writeFileSync(sameSize, '');
    truncateSync(sameSize, RUNTIME_PIN.size);
    assert.throws(() => verifyRuntimeTarball(sameSize), /sha256 [0-9a-f]{64}, but .* is pinned at 0c72edca/);
  });

  test('the pinned bun is the one npm run build compiles with (the one every test runs)', () => {
    assert.equal(devBunVersion(), RUNTIME_PIN.version);
    const lock = JSON.parse(readFileSync(join(RELEASE_DIR, '..', 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { version: string; integrity: string }>;
    };
    const locked = lock.packages[`node_modules/${RUNTIME_PIN.name}`];
    assert.equal(locked?.version, RUNTIME_PIN.version);
    assert.equal(locked?.integrity, RUNTIME_PIN.integrity);
  });

  test("spec defaults are the CPI's own defaults, and every CPI option is a job property", () => {
    const props = jobSpec().properties;
    const cpiDefaults = dockerPropertiesCheck({}, 'docker') as Record<string, unknown>;
    const dockerProps = Object.keys(props)
      .filter((k) => k.startsWith('docker.'))
      .map((k) => k.slice('docker.'.length));
    assert.deepEqual(
      dockerProps.sort(),
      [...Object.keys(cpiDefaults), ...DOCKER_OPTIONS_WITHOUT_DEFAULT].sort(),
    );
    for (const [key, value] of Object.entries(cpiDefaults))
      assert.deepEqual(props[`docker.${key}`]?.default, value, `default of docker.${key}`);
    for (const key of DOCKER_OPTIONS_WITHOUT_DEFAULT)
      assert.equal(props[`docker.${key}`]?.default, undefined, `docker.${key} has no default in the CPI`);

    const agent = parseConfig(
      { cloud: { plugin: 'docker', properties: { agent: { mbus: DIRECTOR_MBUS } } } },
      {},
    ).agent;
    assert.deepEqual(props['agent.ntp']?.default, agent.ntp);
    assert.equal(props['agent.mbus']?.default, undefined, 'agent.mbus is required');
    assert.deepEqual(props['agent.blobstore.options']?.default, {});
    for (const [name, def] of Object.entries(props)) assert.ok(def?.description, `${name} has a description`);
  });
});

describe('templates', () => {
  test('cpi.json carries every property, TLS material inline, in the file shape the CPI reads', () => {
    const properties = {
      docker: {
        host: 'tcp://192.168.50.1:2376',
        tls: TLS,
        api_version: '1.41',
        data_dir: '/srv/bosh',
        start_containers_with_systemd: true,
        start_command: ['/sbin/init'],
        cap_add: ['NET_ADMIN'],
        privileged: true,
        security_opt: ['apparmor=unconfined'],
        publish_host_ip: '127.0.0.1',
        default_network: 'bosh',
        helper_image: 'helper:2',
        allowed_bind_sources: ['/var/run/docker.sock'],
        allow_privileged_vms: true,
        allowed_cap_add: ['SYS_TIME'],
        allow_insecure_tcp: false,
        allowed_networks: ['bosh'],
      },
      agent: {
        mbus: DIRECTOR_MBUS,
        ntp: ['time1.example.com'],
        blobstore: { provider: 'dav', options: { endpoint: 'https://10.245.0.10:25250' } },
      },
    };
    const config = renderedConfig(renderJob(properties));
    assert.deepEqual(config, { cloud: { plugin: 'docker', properties } });
    const parsed = parseConfig(config, { director_uuid: 'd' });
    assert.equal(parsed.agent.mbus, DIRECTOR_MBUS);
    const docker = parseDockerProperties(parsed.properties.docker);
    assert.deepEqual(loadTls(docker), { ca: TLS.ca, cert: TLS.certificate, key: TLS.private_key });
  });

  test('only agent.mbus is required: the rest takes the defaults, without TLS, API pin or agent blobstore', () => {
    const config = renderedConfig(renderJob({ agent: { mbus: DIRECTOR_MBUS } }));
    const props = config.cloud.properties as {
      docker: Record<string, unknown>;
      agent: Record<string, unknown>;
    };
    assert.deepEqual(props.docker, dockerPropertiesCheck({}, 'docker'));
    assert.deepEqual(props.agent, { mbus: DIRECTOR_MBUS, ntp: [] });
  });

  test('rendering fails with a message naming agent.mbus when it is missing', () => {
    for (const properties of [
      {},
      { agent: { mbus: '' } },
      { docker: { host: 'tcp://h:2376' }, agent: { ntp: [] } },
    ]) {
      const res = renderJob(properties);
      assert.equal(res.ok, false, `rendered without agent.mbus: ${JSON.stringify(properties)}`);
      if (!res.ok) {
        assert.match(res.stderr, /cpi\.json\.erb/);
        assert.match(res.stderr, /docker_cpi: property agent\.mbus is required: the message bus URL/);
      }
    }
  });

  test('an agent.mbus that is not a nats:// or https:// URL fails rendering without echoing its password', () => {
    const res = renderJob({ agent: { mbus: 'mbus:s3cret@10.0.0.6:6868' } });
    assert.equal(res.ok, false);
    if (!res.ok) {
      assert.match(res.stderr, /agent\.mbus must be a nats:\/\/ or https:\/\/ URL; its scheme is "mbus"/);
      assert.doesNotMatch(res.stderr, /s3cret/);
    }
  });

  test('docker.tls must be complete', () => {
    const res = renderJob({ agent: { mbus: DIRECTOR_MBUS }, docker: { tls: { ca: TLS.ca } } });
    assert.equal(res.ok, false);
    if (!res.ok) assert.match(res.stderr, /missing docker\.tls\.certificate, docker\.tls\.private_key/);
  });

  test('an unquoted docker.api_version (a YAML number) fails rendering instead of becoming "1.4"', () => {
    const res = renderJob({ agent: { mbus: DIRECTOR_MBUS }, docker: { api_version: 1.4 } });
    assert.equal(res.ok, false);
    if (!res.ok) assert.match(res.stderr, /docker\.api_version must be a string such as "1\.41"/);
  });
});

describe('installed the way BOSH installs it', () => {
  let root: string;
  let packagesDir: string;

  before(() => {
    root = tmp('installed');
    packagesDir = compilePackages(root);
  });

  const boshEnv = (jobsDir: string, extra: Record<string, string> = {}) => ({
    PATH: DIRECTOR_PATH,
    BOSH_JOBS_DIR: jobsDir,
    BOSH_PACKAGES_DIR: packagesDir,
    ...extra,
  });

  test('the one package compiles offline into the CPI executable bin/cpi, keeping no Bun toolchain', () => {
    assert.deepEqual(packageNames(), [CPI_PACKAGE]);
    assert.deepEqual(filesUnder(join(packagesDir, CPI_PACKAGE)), ['bin/cpi']);
    // The executable carries the pinned runtime: Bun's own version, asked through its environment switch.
    const version = execFileSync(join(packagesDir, CPI_PACKAGE, 'bin', 'cpi'), ['--version'], {
      encoding: 'utf8',
      env: { PATH: DIRECTOR_PATH, BUN_BE_BUN: '1' },
    });
    assert.equal(version.trim(), RUNTIME_PIN.version);
  });

  test('bin/cpi answers info through the compiled CPI, with the rendered config as first argument', async () => {
    const jobsDir = installJob(join(root, 'info'), { agent: { mbus: DIRECTOR_MBUS }, docker: { tls: TLS } });
    const env = boshEnv(jobsDir, { NODE_EXTRA_CA_CERTS: '/nonexistent/extra-ca.pem' });
    const run = await runWrapper(join(jobsDir, JOB, 'bin', 'cpi'), INFO, env);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.response?.error, null, JSON.stringify(run.response));
    const info = run.response?.result as { stemcell_formats: string[]; api_version: number };
    assert.deepEqual(info.stemcell_formats, BACKENDS.docker?.stemcellFormats);
    assert.ok(info.api_version >= 2, `the Director needs api_version >= 2, got ${info.api_version}`);
    assert.doesNotMatch(run.stderr, /extra-ca|NODE_EXTRA_CA_CERTS/, 'NODE_EXTRA_CA_CERTS reached the CPI');

    // It is the packaged executable that answered: without it the wrapper fails, naming it.
    const executable = join(packagesDir, 'bosh-ts-cpi', 'bin', 'cpi');
    chmodSync(executable, 0o644);
    try {
      const without = await runWrapper(join(jobsDir, JOB, 'bin', 'cpi'), INFO, env);
      assert.notEqual(without.code, 0);
      assert.ok(without.stderr.includes(executable), without.stderr);
    } finally {
      chmodSync(executable, 0o755);
    }
  });

  test('the CPI reads the rendered cpi.json: a config it rejects comes back as the error of info', async () => {
    const jobsDir = installJob(join(root, 'bad-host'), {
      agent: { mbus: DIRECTOR_MBUS },
      docker: { host: 'ftp://docker.example.com' },
    });
    const run = await runWrapper(join(jobsDir, JOB, 'bin', 'cpi'), INFO, boshEnv(jobsDir));
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.response?.error?.type, 'Bosh::Clouds::CpiError');
    assert.match(run.response?.error?.message ?? '', /config\.cloud\.properties\.docker\.host/);
  });

  test('without BOSH_JOBS_DIR and BOSH_PACKAGES_DIR the wrapper looks in /var/vcap', async (t) => {
    if (existsSync('/var/vcap/packages/bosh-ts-cpi'))
      return t.skip('/var/vcap/packages/bosh-ts-cpi exists here');
    const jobsDir = installJob(join(root, 'defaults'), { agent: { mbus: DIRECTOR_MBUS } });
    const run = await runWrapper(join(jobsDir, JOB, 'bin', 'cpi'), INFO, { PATH: DIRECTOR_PATH });
    assert.notEqual(run.code, 0);
    assert.match(run.stderr, /\/var\/vcap\/packages\/bosh-ts-cpi\/bin\/cpi/);
  });

  test('the packaged CPI talks to the local Docker engine (has_vm of an unknown VM is false)', async (t) => {
    if (!existsSync('/var/run/docker.sock')) return t.skip('no Docker engine at /var/run/docker.sock');
    const jobsDir = installJob(join(root, 'docker'), { agent: { mbus: DIRECTOR_MBUS } });
    const request = { ...INFO, method: 'has_vm', arguments: [`vm-${randomUUID()}`], api_version: 2 };
    const run = await runWrapper(join(jobsDir, JOB, 'bin', 'cpi'), request, boshEnv(jobsDir));
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.response?.error, null, JSON.stringify(run.response));
    assert.equal(run.response?.result, false);
  });
});

describe('operations/docker-cpi.yml', () => {
  type Op = { type: string; path: string; value?: unknown };
  const ops = () => loadYaml<Op[]>(join(RELEASE_DIR, 'operations', 'docker-cpi.yml'));
  const op = (path: string) => {
    const found = ops().find((o) => o.path === path);
    assert.ok(found, `no operation on ${path}`);
    return found.value;
  };
  const VARS: Record<string, unknown> = {
    docker_host: 'tcp://10.245.0.1:2376',
    docker_tls: TLS,
    internal_ip: '10.245.0.10',
    mbus_bootstrap_password: 'pw',
  };
  /** Replaces ((name)) as the bosh CLI does: a whole-value variable takes the variable's value. */
  const interpolate = (value: unknown): unknown => {
    if (typeof value === 'string') {
      const whole = /^\(\(([\w.]+)\)\)$/.exec(value);
      if (whole) return VARS[whole[1] as string];
      return value.replace(/\(\(([\w.]+)\)\)/g, (_, name: string) => String(VARS[name]));
    }
    if (Array.isArray(value)) return value.map(interpolate);
    if (value && typeof value === 'object')
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v)]));
    return value;
  };
  /** Leaf property names of a properties hash ("docker.tls" for a variable holding a hash). */
  const leaves = (value: unknown, prefix: string): string[] =>
    value && typeof value === 'object' && !Array.isArray(value)
      ? Object.entries(value).flatMap(([k, v]) => leaves(v, `${prefix}.${k}`))
      : [prefix];

  test("it swaps this release's docker_cpi job in as the create-env CPI and the Director's CPI", () => {
    assert.deepEqual(op('/cloud_provider/template?'), { name: JOB, release: 'bosh-ts-cpi' });
    assert.deepEqual(op('/instance_groups/name=bosh/jobs/-'), { name: JOB, release: 'bosh-ts-cpi' });
    assert.equal(op('/instance_groups/name=bosh/properties/director/cpi_job?'), JOB);
    assert.deepEqual(op('/releases/-'), { name: 'bosh-ts-cpi', url: 'file://((bosh_ts_cpi_release))' });
    for (const o of ops()) assert.equal(o.type, 'replace', o.path);
  });

  test('every property it sets is declared by the job', () => {
    const declared = Object.keys(jobSpec().properties);
    for (const path of [
      '/instance_groups/name=bosh/properties/docker?',
      '/cloud_provider/properties/docker?',
    ])
      for (const name of leaves(op(path), 'docker'))
        assert.ok(
          declared.includes(name) || declared.some((d) => d.startsWith(`${name}.`)),
          `${path}: ${name} is not a property of ${JOB}`,
        );
  });

  test("with bosh.yml's own properties it renders configs the CPI accepts, for the Director and for create-env", () => {
    // What bosh-deployment's bosh.yml already sets next to the job: agent.mbus, and a Director blobstore
    // that must not leak into the agent settings.
    const director = {
      agent: { mbus: 'nats://((internal_ip)):4222', env: { bosh: { ntp: ['time1.google.com'] } } },
      blobstore: { provider: 'dav', address: '((internal_ip))' },
      docker: op('/instance_groups/name=bosh/properties/docker?'),
    };
    const createEnv = {
      agent: { mbus: 'https://mbus:((mbus_bootstrap_password))@0.0.0.0:6868' },
      blobstore: { provider: 'local', path: '/var/vcap/micro_bosh/data/cache' },
      docker: op('/cloud_provider/properties/docker?'),
    };
    for (const [name, properties, mbus] of [
      ['Director', director, 'nats://10.245.0.10:4222'],
      ['create-env', createEnv, 'https://mbus:pw@0.0.0.0:6868'],
    ] as const) {
      const config = renderedConfig(renderJob(interpolate(properties) as Record<string, unknown>));
      const parsed = parseConfig(config, { director_uuid: 'd' });
      assert.deepEqual(parsed.agent, { mbus, ntp: [] }, name);
      const docker = parseDockerProperties(parsed.properties.docker);
      assert.equal(docker.host, 'tcp://10.245.0.1:2376', name);
      assert.equal(docker.start_containers_with_systemd, true, name);
      assert.deepEqual(loadTls(docker), { ca: TLS.ca, cert: TLS.certificate, key: TLS.private_key }, name);
    }
  });
});
