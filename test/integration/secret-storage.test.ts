// Secret storage belongs to one project and one service, against the real engine and Compose v2.
// Project shop_web with service api and project shop with service web_api once shared one RAM
// volume (both were `dso_shop_web_api`): each read the other's secrets, and after `down` of both
// the volume and a holder stayed, with values in RAM. Also: storage DSO finds under its names but
// owned by someone else is refused; storage named the old way moves to the new names on `up` and
// goes on `down` (found by labels, never by name); and file owners above 2,097,151 arrive exactly.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { holderImageRef } from '../../src/docker/secret-volumes.ts';
import { holderName, secretVolumeName } from '../../src/docker/storage-names.ts';
import { buildTar } from '../../src/docker/tar.ts';
import { DATA_ROOT, canary, docker, dockerOk, dso, projectObjects, run, sandbox, scanForLeaks, writeFiles, type Sandbox } from './support.ts';

const IMAGE = 'dso-test/busybox:latest';
const SHOP_WEB = 'shop_web';
const SHOP = 'shop';
const SECRET_DIR = '/run/secrets';

/** One project with one service that reads `app/key` as a file; its own vault, its own value. */
async function project(name: string, service: string, value: string): Promise<Sandbox> {
  const sb = sandbox(name);
  writeFiles(sb.dir, {
    'compose.yaml': `
services:
  ${service}:
    image: ${IMAGE}
    init: true
    command: ["sleep", "3600"]
    environment:
      KEY_FILE: dsofile://app/key?mode=0444
`,
  });
  expect((await dso(sb, ['init'])).code).toBe(0);
  const set = await dso(sb, ['secret', 'set', 'app/key'], { input: value });
  expect(set.code, set.stderr).toBe(0);
  return sb;
}

const lines = (s: string) => s.split('\n').filter(Boolean);

/** Everything of these projects on the engine, whatever its name: a run cut short leaves some. */
async function purge(...projects: string[]): Promise<void> {
  for (const p of projects) {
    for (const label of [`com.docker.compose.project=${p}`, `dso.project=${p}`]) {
      const ids = lines(await dockerOk(['ps', '-aq', '--filter', `label=${label}`]));
      if (ids.length) await docker(['rm', '-f', ...ids]);
    }
    const volumes = lines(await dockerOk(['volume', 'ls', '-q', '--filter', `label=dso.project=${p}`]));
    if (volumes.length) await docker(['volume', 'rm', '-f', ...volumes]);
  }
}

/** The volume mounted at `dir` in a container, with its labels. */
async function mountedVolume(container: string, dir = SECRET_DIR): Promise<{ name: string; labels: Record<string, string> }> {
  const mounts = JSON.parse(await dockerOk(['inspect', '-f', '{{json .Mounts}}', container])) as Array<{ Name?: string; Destination: string }>;
  const name = mounts.find((m) => m.Destination === dir)?.Name;
  if (!name) throw new Error(`${container} mounts nothing at ${dir}`);
  const labels = JSON.parse(await dockerOk(['volume', 'inspect', '-f', '{{json .Labels}}', name])) as Record<string, string>;
  return { name, labels };
}

const read = (container: string, path = `${SECRET_DIR}/app/key`) => dockerOk(['exec', container, 'cat', path]);

/** Names of the engine's volumes and containers. */
async function engineObjects(): Promise<{ volumes: string[]; containers: string[] }> {
  return {
    volumes: lines(await dockerOk(['volume', 'ls', '-q'])),
    containers: lines(await dockerOk(['ps', '-a', '--format', '{{.Names}}'])),
  };
}

/** Every canary found in RAM: the tmpfs file systems mounted under the engine's data root (secret volumes, container shm). */
function canariesInRam(canaries: string[]): string[] {
  const mounts = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[2] === 'tmpfs' && f[1]!.startsWith(`${DATA_ROOT}/`))
    .map((f) => f[1]!.replace(/\\040/g, ' '));
  return scanForLeaks(mounts, canaries).map((h) => `${h.needle} in ${h.file}`);
}

describe('two projects whose names run together: shop_web/api and shop/web_api', () => {
  const A = canary('shop_web');
  const B = canary('shop');
  let sbA: Sandbox;
  let sbB: Sandbox;
  const seen = new Set<string>(); // every volume and holder these projects used

  beforeAll(async () => {
    await purge(SHOP_WEB, SHOP);
    sbA = await project('shopweb', 'api', A);
    sbB = await project('shop', 'web_api', B);
    for (const [sb, p] of [[sbA, SHOP_WEB], [sbB, SHOP]] as const) {
      const up = await dso(sb, ['up', '-p', p, '-d']);
      expect(up.code, up.stderr).toBe(0);
    }
  });

  afterAll(async () => {
    await purge(SHOP_WEB, SHOP);
    sbA.cleanup();
    sbB.cleanup();
  });

  test('both are up at once, and each reads only its own secret', async () => {
    expect(await read('shop_web-api-1')).toBe(A);
    expect(await read('shop-web_api-1')).toBe(B);
    // Nothing else in either secret directory: no file of the other project.
    expect(lines(await dockerOk(['exec', 'shop_web-api-1', 'find', SECRET_DIR, '-type', 'f']))).toEqual([`${SECRET_DIR}/.dso-ready`, `${SECRET_DIR}/app/key`]);
    expect(lines(await dockerOk(['exec', 'shop-web_api-1', 'find', SECRET_DIR, '-type', 'f']))).toEqual([`${SECRET_DIR}/.dso-ready`, `${SECRET_DIR}/app/key`]);
  });

  test('each has its own volume and holder, labelled with its own project and service', async () => {
    const a = await mountedVolume('shop_web-api-1');
    const b = await mountedVolume('shop-web_api-1');
    expect(a.name).not.toBe(b.name);
    expect(a.labels).toMatchObject({ 'dso.project': SHOP_WEB, 'dso.service': 'api', 'dso.mount-dir': SECRET_DIR, 'dso.role': 'secret-volume' });
    expect(b.labels).toMatchObject({ 'dso.project': SHOP, 'dso.service': 'web_api', 'dso.mount-dir': SECRET_DIR, 'dso.role': 'secret-volume' });
    for (const [p, v] of [[SHOP_WEB, a.name], [SHOP, b.name]] as const) {
      const holders = lines(await dockerOk(['ps', '-a', '--format', '{{.Names}}', '--filter', 'label=dso.role=holder', '--filter', `volume=${v}`]));
      expect(holders.length).toBe(1);
      expect(await dockerOk(['inspect', '-f', '{{index .Config.Labels "dso.project"}}', holders[0]!])).toBe(`${p}\n`);
      seen.add(v).add(holders[0]!);
    }
  });

  test('down of one leaves the other working, across a restart of its container', async () => {
    const down = await dso(sbA, ['down', '-p', SHOP_WEB, '-t', '1']);
    expect(down.code, down.stderr).toBe(0);
    expect(await projectObjects(SHOP_WEB)).toEqual({ containers: [], volumes: [] });
    expect(await read('shop-web_api-1')).toBe(B);
    await dockerOk(['restart', '-t', '1', 'shop-web_api-1']);
    expect(await read('shop-web_api-1')).toBe(B);
  });

  test('down of both leaves no DSO volume, no holder, and no value in RAM or on disk', async () => {
    const down = await dso(sbB, ['down', '-p', SHOP, '-t', '1']);
    expect(down.code, down.stderr).toBe(0);
    expect(await projectObjects(SHOP)).toEqual({ containers: [], volumes: [] });
    const left = await engineObjects();
    expect(seen.size).toBe(4);
    for (const name of seen) {
      expect(left.volumes).not.toContain(name);
      expect(left.containers).not.toContain(name);
    }
    expect(left.containers.filter((c) => c.startsWith('dso-holder-shop'))).toEqual([]);
    expect(lines(await dockerOk(['volume', 'ls', '-q', '--filter', 'label=dso.role=secret-volume', '--filter', `label=dso.project=${SHOP_WEB}`]))).toEqual([]);
    expect(canariesInRam([A, B])).toEqual([]);
    expect(scanForLeaks([DATA_ROOT, sbA.dir, sbB.dir, '/tmp', '/var/tmp'], [A, B], { skip: (p) => p.endsWith('vault.enc') })).toEqual([]);
  });
});

describe('storage under a DSO name that belongs to someone else', () => {
  let sb: Sandbox;
  const value = canary('refused');
  const volume = secretVolumeName(SHOP, 'web_api', SECRET_DIR);

  beforeAll(async () => {
    await purge(SHOP, 'intruder');
    sb = await project('shop', 'web_api', value);
  });

  afterAll(async () => {
    await purge(SHOP, 'intruder');
    await docker(['volume', 'rm', '-f', volume]);
    sb.cleanup();
  });

  test('a volume labelled for another project is refused: nothing started, nothing written to it', async () => {
    await dockerOk(['volume', 'create', '--driver', 'local', '--opt', 'type=tmpfs', '--opt', 'device=tmpfs', '--label', 'dso.managed=true', '--label', 'dso.role=secret-volume', '--label', 'dso.project=intruder', '--label', 'dso.service=x', '--label', `dso.mount-dir=${SECRET_DIR}`, volume]);
    const up = await dso(sb, ['up', '-p', SHOP, '-d']);
    expect(up.code).toBe(9);
    expect(up.stderr).toContain(`volume ${volume} belongs to project "intruder", service "x"`);
    expect(up.stderr).toContain('nothing was started');
    expect(up.stderr).toContain(`docker volume rm ${volume}`);
    expect(up.stderr).not.toContain(value);
    expect((await projectObjects(SHOP)).containers).toEqual([]);
    expect(JSON.parse(await dockerOk(['volume', 'inspect', '-f', '{{json .Labels}}', volume]))).toMatchObject({ 'dso.project': 'intruder' });
    expect(await dockerOk(['run', '--rm', '-v', `${volume}:/v`, IMAGE, 'ls', '-A', '/v'])).toBe('');
    await dockerOk(['volume', 'rm', volume]);
  });

  test('a volume without DSO\'s labels is refused too', async () => {
    await dockerOk(['volume', 'create', volume]);
    const up = await dso(sb, ['up', '-p', SHOP, '-d']);
    expect(up.code).toBe(9);
    expect(up.stderr).toContain(`volume ${volume} belongs to no DSO project`);
    expect((await projectObjects(SHOP)).containers).toEqual([]);
    await dockerOk(['volume', 'rm', volume]);
  });

  test('a container under the holder\'s name that is not this project\'s holder is refused before any volume is made', async () => {
    const holder = holderName(SHOP, [volume]);
    await dockerOk(['run', '-d', '--name', holder, '--label', 'dso.managed=true', '--label', 'dso.role=holder', '--label', 'dso.project=intruder', '--network', 'none', IMAGE, 'sleep', '600']);
    const up = await dso(sb, ['up', '-p', SHOP, '-d']);
    expect(up.code).toBe(9);
    expect(up.stderr).toContain(`container ${holder} is not the holder of project "shop"`);
    expect(up.stderr).toContain('project "intruder"');
    expect((await projectObjects(SHOP)).containers).toEqual([]);
    expect((await projectObjects(SHOP)).volumes).toEqual([]);
    await dockerOk(['rm', '-f', holder]);
  });

  test('a rotation whose volume name is taken changes nothing: no record, no volume, no holder', async () => {
    const { connectEngine } = await import('../../src/docker/engine.ts');
    const { prepareGeneration } = await import('../../src/docker/secret-volumes.ts');
    const { rotationHolderName } = await import('../../src/docker/storage-names.ts');
    const engine = await connectEngine({ DOCKER_HOST: process.env.DOCKER_HOST });
    const rotation = `rtest${Date.now().toString(36)}`;
    const taken = secretVolumeName(SHOP, 'web_api', SECRET_DIR, rotation);
    await dockerOk(['volume', 'create', '--label', 'dso.project=intruder', taken]);
    try {
      const recorded: unknown[] = [];
      const attempt = prepareGeneration(engine, { project: SHOP, service: 'web_api', rotation, dirs: [SECRET_DIR] }, [], () => new Uint8Array(0), async (names) => {
        recorded.push(names);
      });
      await expect(attempt).rejects.toThrow(`volume ${taken}, which rotation ${rotation} of service "web_api" would create, exists already (it belongs to no DSO project`);
      expect(recorded).toEqual([]);
      expect((await docker(['container', 'inspect', rotationHolderName(SHOP, 'web_api', rotation)])).code).not.toBe(0);
      expect(JSON.parse(await dockerOk(['volume', 'inspect', '-f', '{{json .Labels}}', taken]))).toEqual({ 'dso.project': 'intruder' });
    } finally {
      await docker(['volume', 'rm', '-f', taken]);
    }
  });

  test('a bin volume DSO did not make is refused: its program would start every service with secret files', async () => {
    const { HOLDER_SHA256, HOLDER_VERSION } = await import('../../src/docker/holder-binary.ts');
    const arch = (await dockerOk(['version', '-f', '{{.Server.Arch}}'])).trim() as 'amd64' | 'arm64';
    const bin = `dso-bin-${HOLDER_VERSION}-${HOLDER_SHA256[arch].slice(0, 12)}`;
    await docker(['volume', 'rm', bin]); // DSO makes it again when it needs it
    await dockerOk(['volume', 'create', bin]);
    try {
      const up = await dso(sb, ['up', '-p', SHOP, '-d']);
      expect(up.code).toBe(9);
      expect(up.stderr).toContain(`volume ${bin} exists but DSO did not make it`);
      expect(await projectObjects(SHOP)).toEqual({ containers: [], volumes: [] });
    } finally {
      await dockerOk(['volume', 'rm', bin]);
    }
  });

  test('once the foreign objects are gone, up works', async () => {
    const up = await dso(sb, ['up', '-p', SHOP, '-d']);
    expect(up.code, up.stderr).toBe(0);
    expect(await read('shop-web_api-1')).toBe(value);
    expect((await dso(sb, ['down', '-p', SHOP, '-t', '1'])).code).toBe(0);
  });
});

describe('storage named the old way (dso_PROJECT_SERVICE), shared by shop_web and shop', () => {
  const OLD = canary('old'); // what the shared volume held: shop_web's value, which shop read too
  const B = canary('shopnew');
  const OLD_VOLUME = 'dso_shop_web_api'; // labelled for shop_web, which made it first
  const OLD_OWN = 'dso_shop_web_api_0123abcd'; // an old second-directory volume of shop's own, unmounted
  const BYSTANDER = 'dso_shop_data'; // not DSO's: its name only looks like it
  const H1 = 'dso-holder-shop_web-0123abcd';
  const H2 = 'dso-holder-shop-4567cdef';
  let sbOld: Sandbox;
  let sbB: Sandbox;

  const oldCompose = (service: string) => `
services:
  ${service}:
    image: ${IMAGE}
    init: true
    command: ["sleep", "3600"]
    labels: { dso.managed: "true" }
    volumes: [{ type: volume, source: s, target: ${SECRET_DIR}, read_only: true }]
volumes:
  s: { name: ${OLD_VOLUME}, external: true }
`;

  const secretVolume = async (name: string, owner: Record<string, string>) => {
    const labels = Object.entries({ 'dso.managed': 'true', 'dso.role': 'secret-volume', 'dso.generation': 'base', ...owner }).flatMap(([k, v]) => ['--label', `${k}=${v}`]);
    await dockerOk(['volume', 'create', '--driver', 'local', '--opt', 'type=tmpfs', '--opt', 'device=tmpfs', '--opt', 'o=size=64m,mode=0755', ...labels, name]);
  };

  beforeAll(async () => {
    await purge(SHOP_WEB, SHOP);
    for (const v of [OLD_VOLUME, OLD_OWN, BYSTANDER]) await docker(['volume', 'rm', '-f', v]);
    // What an earlier version left: the shared volume, a holder of each project holding it, both apps mounting it.
    const image = holderImageRef((await dockerOk(['version', '-f', '{{.Server.Arch}}'])).trim() as 'amd64');
    if ((await docker(['image', 'inspect', image])).code !== 0) {
      // The holder image is made by any `dso up` with a file secret.
      const warm = await project('warm', 'app', canary('warm'));
      expect((await dso(warm, ['up', '-p', 'warm', '-d'])).code).toBe(0);
      expect((await dso(warm, ['down', '-p', 'warm', '-t', '1'])).code).toBe(0);
      warm.cleanup();
    }
    await secretVolume(OLD_VOLUME, { 'dso.project': SHOP_WEB, 'dso.service': 'api', 'dso.mount-dir': SECRET_DIR });
    await secretVolume(OLD_OWN, { 'dso.project': SHOP, 'dso.service': 'web_api', 'dso.mount-dir': '/opt/conf' });
    await dockerOk(['volume', 'create', BYSTANDER]);
    for (const [name, p, volumes] of [[H1, SHOP_WEB, [OLD_VOLUME]], [H2, SHOP, [OLD_VOLUME, OLD_OWN]]] as const) {
      const mounts = volumes.flatMap((v) => ['--mount', `type=volume,src=${v},dst=/v/${v}`]);
      await dockerOk(['run', '-d', '--name', name, '--label', 'dso.managed=true', '--label', 'dso.role=holder', '--label', `dso.project=${p}`, '--network', 'none', '--read-only', '--cap-drop', 'ALL', ...mounts, image]);
    }
    const tar = buildTar([
      { path: 'app', type: 'dir', mode: 0o755, uid: 0, gid: 0 },
      { path: 'app/key', type: 'file', mode: 0o444, uid: 0, gid: 0, data: new TextEncoder().encode(OLD) },
      { path: '.dso-ready', type: 'file', mode: 0o444, uid: 0, gid: 0, data: new Uint8Array(0) },
    ]);
    const cp = await run(['docker', 'cp', '-', `${H1}:/v/${OLD_VOLUME}`], { env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', DOCKER_HOST: process.env.DOCKER_HOST!, DOCKER_CONFIG: process.env.DOCKER_CONFIG! }, input: tar });
    tar.fill(0);
    expect(cp.code, cp.stderr).toBe(0);
    sbOld = sandbox('oldstyle');
    writeFiles(sbOld.dir, { 'shop_web.yaml': oldCompose('api'), 'shop.yaml': oldCompose('web_api') });
    for (const [p, file] of [[SHOP_WEB, 'shop_web.yaml'], [SHOP, 'shop.yaml']] as const) {
      await dockerOk(['compose', '-p', p, '--project-directory', sbOld.dir, '-f', join(sbOld.dir, file), 'up', '-d']);
    }
    expect(await read('shop_web-api-1')).toBe(OLD);
    expect(await read('shop-web_api-1')).toBe(OLD); // the bug: shop read shop_web's secret
    sbB = await project('shop', 'web_api', B);
  });

  afterAll(async () => {
    await purge(SHOP_WEB, SHOP);
    for (const v of [OLD_VOLUME, OLD_OWN, BYSTANDER]) await docker(['volume', 'rm', '-f', v]);
    await docker(['rm', '-f', H1, H2]);
    sbOld.cleanup();
    sbB.cleanup();
  });

  test('up of shop moves it to its own volume, removes its old storage, and leaves shop_web\'s alone', async () => {
    const up = await dso(sbB, ['up', '-p', SHOP, '-d']);
    expect(up.code, up.stderr).toBe(0);
    expect(await read('shop-web_api-1')).toBe(B);
    const v = await mountedVolume('shop-web_api-1');
    expect(v.name).toBe(secretVolumeName(SHOP, 'web_api', SECRET_DIR));
    const left = await engineObjects();
    expect(left.containers).not.toContain(H2); // shop's old holder: shop_web's own holder keeps the shared volume
    expect(left.volumes).not.toContain(OLD_OWN);
    expect(left.containers).toContain(H1);
    expect(left.volumes).toContain(OLD_VOLUME);
    expect(left.volumes).toContain(BYSTANDER);
    // shop_web, still on the old names, keeps working, also when its container restarts.
    await dockerOk(['restart', '-t', '1', 'shop_web-api-1']);
    expect(await read('shop_web-api-1')).toBe(OLD);
  });

  test('down of shop_web, still on the old names, removes its old volume and holder by their labels', async () => {
    const down = await dso(sbOld, ['down', '-p', SHOP_WEB, '-f', join(sbOld.dir, 'shop_web.yaml'), '-t', '1']);
    expect(down.code, down.stderr).toBe(0);
    const left = await engineObjects();
    expect(left.containers).not.toContain(H1);
    expect(left.volumes).not.toContain(OLD_VOLUME);
    expect(left.volumes).toContain(BYSTANDER);
    expect(await read('shop-web_api-1')).toBe(B);
  });

  test('down of shop then leaves nothing of either, and no value in RAM', async () => {
    const down = await dso(sbB, ['down', '-p', SHOP, '-t', '1']);
    expect(down.code, down.stderr).toBe(0);
    expect(await projectObjects(SHOP)).toEqual({ containers: [], volumes: [] });
    expect(await projectObjects(SHOP_WEB)).toEqual({ containers: [], volumes: [] });
    expect((await engineObjects()).volumes).toContain(BYSTANDER);
    expect(canariesInRam([OLD, B])).toEqual([]);
  });
});

describe('a container of the project that outlives down', () => {
  const A = canary('kept_a');
  const B = canary('kept_b');
  const p = 'dsoorphan';
  let sb: Sandbox;
  const service = (name: string, id: string) => `
  ${name}:
    image: ${IMAGE}
    init: true
    command: ["sleep", "3600"]
    environment:
      KEY_FILE: dsofile://${id}`;

  beforeAll(async () => {
    await purge(p);
    sb = sandbox('orphan');
    writeFiles(sb.dir, { 'compose.yaml': `services:${service('a', 'app/a')}${service('b', 'app/b')}\n` });
    expect((await dso(sb, ['init'])).code).toBe(0);
    for (const [name, value] of [['app/a', A], ['app/b', B]] as const) expect((await dso(sb, ['secret', 'set', name], { input: value })).code).toBe(0);
    const up = await dso(sb, ['up', '-p', p, '-d']);
    expect(up.code, up.stderr).toBe(0);
  });

  afterAll(async () => {
    await purge(p);
    sb.cleanup();
  });

  test('keeps the volume it mounts, with a holder, and says so; the rest goes at once, and the next down removes them', async () => {
    const a = await mountedVolume(`${p}-a-1`);
    const b = await mountedVolume(`${p}-b-1`);
    // Service b leaves the compose file; `compose down` without --remove-orphans leaves its container.
    writeFiles(sb.dir, { 'compose.yaml': `services:${service('a', 'app/a')}\n` });
    const down = await dso(sb, ['down', '-p', p, '-t', '1']);
    expect(down.code, down.stderr).toBe(0);
    expect(down.stderr).toContain(`secret volumes still mounted by containers that \`compose down\` did not remove were kept: ${b.name}; remove those containers`);
    const left = await engineObjects();
    expect(left.volumes).not.toContain(a.name);
    expect(left.volumes).toContain(b.name);
    expect(canariesInRam([A])).toEqual([]); // a's value left RAM now, though one holder held both volumes
    await dockerOk(['restart', '-t', '1', `${p}-b-1`]);
    expect(await read(`${p}-b-1`, '/run/secrets/app/b')).toBe(B);
    await dockerOk(['rm', '-f', `${p}-b-1`]);
    expect((await dso(sb, ['down', '-p', p, '-t', '1'])).code).toBe(0);
    expect(await projectObjects(p)).toEqual({ containers: [], volumes: [] });
    expect(canariesInRam([A, B])).toEqual([]);
  });
});

describe('file owners above 2,097,151', () => {
  const OPENSHIFT = canary('openshift');
  const MAXUID = canary('maxuid');
  let sb: Sandbox;
  let p: string;

  beforeAll(async () => {
    sb = sandbox('owners');
    p = 'dsoowners';
    await purge(p);
    writeFiles(sb.dir, {
      'compose.yaml': `
services:
  openshift:
    image: ${IMAGE}
    init: true
    user: "1000680000"
    command: ["sleep", "3600"]
    environment:
      KEY_FILE: dsofile://app/openshift
  maxuid:
    image: ${IMAGE}
    init: true
    command: ["sleep", "3600"]
    environment:
      KEY_FILE: dsofile://app/maxuid?uid=4294967294
`,
    });
    expect((await dso(sb, ['init'])).code).toBe(0);
    for (const [name, value] of [['app/openshift', OPENSHIFT], ['app/maxuid', MAXUID]] as const) {
      expect((await dso(sb, ['secret', 'set', name], { input: value })).code).toBe(0);
    }
    const up = await dso(sb, ['up', '-p', p, '-d']);
    expect(up.code, up.stderr).toBe(0);
  });

  afterAll(async () => {
    await dso(sb, ['down', '-p', p, '-t', '1']).catch(() => {});
    await purge(p);
    sb.cleanup();
  });

  const check = async (openshift = OPENSHIFT, maxuid = MAXUID) => {
    // user: "1000680000": the file is that user's, and the container, running as it, reads it.
    expect(await dockerOk(['exec', `${p}-openshift-1`, 'id', '-u'])).toBe('1000680000\n');
    expect(await dockerOk(['exec', `${p}-openshift-1`, 'stat', '-c', '%u %g %a', '/run/secrets/app/openshift'])).toBe('1000680000 1000680000 400\n');
    expect(await dockerOk(['exec', `${p}-openshift-1`, 'cat', '/run/secrets/app/openshift'])).toBe(openshift);
    // 1954453 is the owner seven octal digits made of 1000680000: it must not read the file.
    expect((await docker(['exec', '-u', '1954453', `${p}-openshift-1`, 'cat', '/run/secrets/app/openshift'])).code).not.toBe(0);
    // ?uid=4294967294, the largest id: owner exact, and a process running as it reads the file.
    // Docker starts containers only as users up to 2147483647, so the process switches to it inside.
    expect(await dockerOk(['exec', `${p}-maxuid-1`, 'stat', '-c', '%u %g %a', '/run/secrets/app/maxuid'])).toBe('4294967294 4294967294 400\n');
    const direct = await docker(['exec', '-u', '4294967294', `${p}-maxuid-1`, 'true']);
    expect(direct.code).not.toBe(0);
    expect(direct.stdout + direct.stderr).toContain('uids and gids must be in range 0-2147483647');
    // Accounts to switch to (the container's user database is not a secret).
    await dockerOk(['exec', `${p}-maxuid-1`, 'sh', '-c', 'grep -q ^big: /etc/passwd || printf "big:x:4294967294:4294967294::/:/bin/sh\\nother:x:1000:1000::/:/bin/sh\\n" >> /etc/passwd']);
    const as = (user: string) => docker(['exec', `${p}-maxuid-1`, 'su', user, '-c', 'id -u; cat /run/secrets/app/maxuid']);
    expect(await as('big')).toMatchObject({ code: 0, stdout: `4294967294\n${maxuid}` });
    expect(await as('other')).toMatchObject({ code: 1, stdout: '1000\n' });
  };

  test('the first up writes them exactly (a new volume, one archive)', () => check());

  test('a second up writes them exactly too (files replaced in place by dso-holder publish)', async () => {
    const up = await dso(sb, ['up', '-p', p, '-d']);
    expect(up.code, up.stderr).toBe(0);
    await check();
  });

  test('a rotation writes them exactly too (a new generation of volumes)', async () => {
    const [openshift, maxuid] = [canary('openshift2'), canary('maxuid2')];
    for (const [name, value] of [['app/openshift', openshift], ['app/maxuid', maxuid]] as const) {
      const r = await dso(sb, ['secret', 'set', name], { input: value });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain('Rotated 1 of 1 container');
    }
    expect((await mountedVolume(`${p}-openshift-1`)).labels['dso.generation']).toMatch(/^r/);
    await check(openshift, maxuid);
    expect(scanForLeaks([DATA_ROOT, sb.dir, '/tmp'], [OPENSHIFT, MAXUID, openshift, maxuid], { skip: (x) => x.endsWith('vault.enc') })).toEqual([]);
  });
});
