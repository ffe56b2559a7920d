// Fuzzing the compose edge: secret references (dso://, dsofile://, PROVIDER:PATH#KEY, x-dso ids),
// the raw compose files read for x-dso, and the plan and rewrite of structured-but-wrong models.
// Whatever the input, the outcome is a result or a DsoError naming what is wrong, never another
// exception or a hang; values found in the file never reach a message; valid input round-trips.
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as fc from 'fast-check';
import { stringify } from 'yaml';
import { findCompose, loadProject, type ComposeTool } from '../../../src/compose/compose-cli.ts';
import { collectXDso } from '../../../src/compose/files.ts';
import { planSecrets, type SecretPlan } from '../../../src/compose/plan.ts';
import { parseReference, parseSecretId, secretIdFromCanonical } from '../../../src/compose/references.ts';
import { renderModel } from '../../../src/compose/rewrite.ts';
import { MAX_ID } from '../../../src/docker/tar.ts';
import { CANARY, expectClearDsoError, outcome, params, withCanary } from './support.ts';

const REFERENCE_CODES = ['INVALID_REFERENCE', 'INVALID_SECRET_NAME'] as const;
const COMPOSE_CODES = ['INVALID_REFERENCE', 'INVALID_SECRET_NAME', 'COMPOSE_FILE'] as const;

// --- Generators for the reference grammar: valid parts, and near-misses built from its own characters.

const lower = 'abcdefghijklmnopqrstuvwxyz';
const alnum = `${lower}ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789`;
const chars = (alphabet: string, min: number, max: number) => fc.string({ unit: fc.constantFrom(...alphabet), minLength: min, maxLength: max });
const providerName = fc.tuple(chars(lower, 1, 1), chars(`${lower}0123456789_-`, 0, 20)).map(([a, b]) => a + b);
const pathSegment = chars(`${alnum}_+=@.-`, 1, 16).filter((s) => s !== '.' && s !== '..');
const providerPath = fc.array(pathSegment, { minLength: 1, maxLength: 5 }).map((s) => s.join('/'));
const localSegment = fc.tuple(chars(alnum, 1, 1), chars(`${alnum}._-`, 0, 15)).map(([a, b]) => a + b);
const localName = fc.array(localSegment, { minLength: 1, maxLength: 4 }).map((s) => s.join('/'));
const key = chars(`${alnum}_.-`, 1, 20);
const version = chars(`${alnum}_.-`, 1, 20);
// Valid parts only: 4294967295 is (uid_t)-1, refused by design (src/docker/tar.ts MAX_ID).
const fileOptions = fc.record({ uid: fc.option(fc.integer({ min: 0, max: MAX_ID }), { nil: undefined }), gid: fc.option(fc.integer({ min: 0, max: 65535 }), { nil: undefined }), mode: fc.option(fc.integer({ min: 0, max: 0o777 }), { nil: undefined }) });

// The grammar's own delimiters and look-alikes, mixed with anything: near-misses reach deeper branches.
const grammarNoise = fc.string({ unit: fc.oneof(fc.constantFrom(':', '/', '#', '?', '&', '=', '.', '..', '//', 'version', 'uid', 'mode', 'gid', '0440', 'a', 'Z', '9', '_', '-', '%', ' ', ',', '\n', '\u0000', 'é', '😀'), fc.string({ maxLength: 3 })), maxLength: 40 });
const anyText = fc.oneof(fc.string({ maxLength: 80 }), fc.string({ unit: 'grapheme', maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 40 }), grammarNoise);

describe('secret references', () => {
  test('any text after dso:// or dsofile:// parses or fails with a clear INVALID_REFERENCE that names its place', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('dso://', 'dsofile://'), anyText, async (scheme, rest) => {
        const r = await outcome(() => parseReference(scheme + rest, 'service "web", variable DB'));
        if (r.ok) {
          // A reference that parses has a canonical id that parses back to itself.
          expect(secretIdFromCanonical(r.value.id).id).toBe(r.value.id);
          return;
        }
        const e = expectClearDsoError(r.error, REFERENCE_CODES);
        expect(e.message).toContain('service "web", variable DB');
      }),
      params(),
    );
  });

  test('a huge or pasted reference gives a short message', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('dso://', 'dsofile://'), fc.integer({ min: 1000, max: 200_000 }), fc.constantFrom('a', ':', '#', '?', 'x:', 'vault:a#', 'é'), async (scheme, n, unit) => {
        const r = await outcome(() => parseReference(scheme + unit.repeat(Math.ceil(n / unit.length)), 'here'));
        if (!r.ok) expectClearDsoError(r.error, REFERENCE_CODES);
      }),
      params(10),
    );
  });

  test('parseSecretId (x-dso values, API bodies, labels) never throws anything but INVALID_REFERENCE', async () => {
    await fc.assert(
      fc.asyncProperty(anyText, fc.boolean(), async (text, allowVersion) => {
        const r = await outcome(() => parseSecretId(text, 'secrets.db (x-dso)', { allowVersion }));
        if (r.ok) expect(parseSecretId(r.value.id, 'label').id).toBe(r.value.id);
        else expect(expectClearDsoError(r.error, REFERENCE_CODES).message).toContain('secrets.db (x-dso)');
      }),
      params(),
    );
  });

  test('round trip: a provider reference built from valid parts parses to exactly those parts, in either option order', () => {
    fc.assert(
      fc.property(fc.constantFrom('dso://', 'dsofile://'), providerName, providerPath, fc.option(key, { nil: undefined }), fc.option(version, { nil: undefined }), fileOptions, fc.boolean(), (scheme, provider, path, k, ver, file, keyFirst) => {
        const isFile = scheme === 'dsofile://';
        const options = [
          ...(ver === undefined ? [] : [`version=${ver}`]),
          ...(isFile && file.uid !== undefined ? [`uid=${file.uid}`] : []),
          ...(isFile && file.gid !== undefined ? [`gid=${file.gid}`] : []),
          ...(isFile && file.mode !== undefined ? [`mode=0${file.mode.toString(8).padStart(3, '0')}`] : []),
        ];
        const q = options.length ? `?${options.join('&')}` : '';
        const h = k === undefined ? '' : `#${k}`;
        const raw = `${scheme}${provider}:${path}${keyFirst ? h + q : q + h}`;
        const ref = parseReference(raw, 'here');
        expect(ref).toMatchObject({ provider, path, delivery: isFile ? 'file' : 'env', raw });
        expect(ref.key).toBe(k);
        expect(ref.version).toBe(ver);
        if (isFile) expect(ref.file).toEqual(Object.fromEntries(Object.entries(file).filter(([, x]) => x !== undefined)));
        const canonical = `${provider}:${path}${h}${ver === undefined ? '' : `?version=${ver}`}`;
        expect(ref.id).toBe(canonical);
        const back = secretIdFromCanonical(canonical);
        expect([back.provider, back.path, back.key, back.version, back.id]).toEqual([provider, path, k, ver, canonical]);
      }),
      params(),
    );
  });

  test('round trip: local vault names', () => {
    fc.assert(
      fc.property(fc.constantFrom('dso://', 'dsofile://'), localName, (scheme, name) => {
        fc.pre(name.length <= 255);
        const ref = parseReference(scheme + name, 'here');
        expect(ref.provider).toBeUndefined();
        expect(ref.id).toBe(name);
        expect(secretIdFromCanonical(name).id).toBe(name);
      }),
      params(),
    );
  });
});

// --- Raw compose files, read for x-dso.

const scratch = mkdtempSync(join(tmpdir(), 'dso-fuzz-compose-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
let fileNo = 0;
function composeFile(text: string): string {
  const path = join(scratch, `compose-${fileNo++}.yaml`);
  writeFileSync(path, text);
  return path;
}

/** A value somewhere in a compose file where a user may have put a secret: env values, labels, commands. */
const secretish = fc.oneof(withCanary(), fc.constant(CANARY));
const anyValue: fc.Arbitrary<unknown> = fc.oneof(fc.jsonValue({ maxDepth: 3 }), secretish, fc.constant(null));

const xdsoFile = fc.record(
  {
    services: fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), fc.record({ image: secretish, environment: fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), secretish) }, { requiredKeys: [] }), { maxKeys: 3 }),
    secrets: fc.oneof(
      fc.dictionary(fc.string({ minLength: 1, maxLength: 12 }), fc.oneof(fc.record({ 'x-dso': fc.oneof(localName, anyValue) }), fc.record({ file: secretish }), anyValue), { maxKeys: 4 }),
      anyValue,
    ),
  },
  { requiredKeys: [] },
);

describe('compose files (x-dso)', () => {
  test('arbitrary text as a compose file: a map of x-dso names or a clear error, never a crash or an echoed value', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 200 }), xdsoFile.map((d) => stringify(d)), fc.jsonValue({ maxDepth: 4 }).map((d) => stringify(d))), async (text) => {
        const r = await outcome(() => collectXDso([composeFile(text)]));
        if (r.ok) for (const v of r.value.values()) expect(typeof v).toBe('string');
        else expectClearDsoError(r.error, COMPOSE_CODES);
      }),
      params(3),
    );
  });

  test('YAML alias bombs and deep nesting in a compose file end quickly', async () => {
    const bomb = ['a: &a [x,x,x,x,x,x,x,x,x,x]', ...Array.from({ length: 8 }, (_, i) => `${'b' + i}: &b${i} [${Array(10).fill(i === 0 ? '*a' : `*b${i - 1}`).join(',')}]`), 'secrets: *b7'].join('\n');
    const deep = `secrets: ${'['.repeat(5000)}${']'.repeat(5000)}`;
    for (const text of [bomb, deep]) {
      const r = await outcome(() => collectXDso([composeFile(text)]));
      if (!r.ok) expectClearDsoError(r.error, COMPOSE_CODES);
    }
  });
});

// --- The resolved model: what Compose hands over, but wrong in every way the types allow.

const envValue = fc.oneof(secretish, fc.constantFrom('dso://app/db', 'dsofile://vault:db/creds#password?mode=0440', 'dso://aws:prod/api?version=2'), fc.constantFrom('dso://', 'dsofile://').chain((s) => anyText.map((t) => s + t)), anyValue);
const environment = fc.oneof(
  fc.dictionary(fc.string({ minLength: 1, maxLength: 10 }), envValue, { maxKeys: 5 }),
  fc.array(fc.oneof(fc.tuple(fc.string({ minLength: 1, maxLength: 10 }), envValue).map(([k, v]) => `${k}=${String(v)}`), secretish, anyValue), { maxLength: 5 }),
  anyValue,
);
// A uid or gid is quoted back when it is not a number ("has uid "app"; it must be a number"): an
// id, not a place for secrets, so no canary is planted there.
const idLike = fc.oneof(fc.jsonValue({ maxDepth: 1 }), fc.constantFrom('1000', 'app', '', '-1', '99999999999'));
const secretUse = fc.oneof(
  fc.constantFrom('db', 'api', 'missing'),
  fc.record({ source: fc.oneof(fc.constantFrom('db', 'api'), anyValue), target: fc.oneof(fc.constantFrom('db_password', '/run/secrets/x', '/etc/x', '../x', '/app/conf/x', '/app/conf', '/'), anyValue), uid: fc.oneof(fc.integer({ min: 0, max: 70000 }), idLike), gid: idLike, mode: fc.oneof(fc.constantFrom(0o440, '0440', '0400', 0o1000, -1, '999'), anyValue) }, { requiredKeys: [] }),
  anyValue,
);
const service = fc.oneof(
  fc.record({ image: secretish, user: fc.oneof(fc.constantFrom('1000', '1000:1000', 'app', 0), anyValue), environment, secrets: fc.oneof(fc.array(secretUse, { maxLength: 4 }), anyValue), labels: fc.oneof(fc.dictionary(fc.string({ maxLength: 8 }), secretish), fc.array(secretish, { maxLength: 3 })), volumes: fc.oneof(fc.array(fc.oneof(fc.record({ type: fc.constant('volume'), target: fc.constantFrom('/run/secrets', '/app/conf', '/x') }), secretish, anyValue), { maxLength: 3 }), anyValue), command: fc.array(secretish, { maxLength: 3 }) }, { requiredKeys: [] }),
  anyValue,
);
const model = fc.record({ services: fc.oneof(fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), service, { minKeys: 1, maxKeys: 4 }), anyValue), secrets: fc.oneof(fc.dictionary(fc.constantFrom('db', 'api', 'other'), anyValue), anyValue), volumes: anyValue }, { requiredKeys: ['services'] });
const xdsoMap = fc.dictionary(fc.constantFrom('db', 'api'), fc.oneof(localName, providerName.chain((p) => providerPath.map((x) => `${p}:${x}`)), anyText), { maxKeys: 2 }).map((d) => new Map(Object.entries(d)));

const encoder = new TextEncoder();

describe('compose model plan and rewrite', () => {
  test('a structured-but-wrong model plans or fails clearly; a plan renders to JSON with each dso:// value spliced in exactly', async () => {
    await fc.assert(
      fc.asyncProperty(model, xdsoMap, fc.string({ maxLength: 30 }), async (m, xdso, secretText) => {
        const planned = await outcome(() => planSecrets(m as Record<string, unknown>, xdso, 'proj'));
        if (!planned.ok) return void expectClearDsoError(planned.error, COMPOSE_CODES);
        const plan: SecretPlan = planned.value;
        // The value of each secret: its name and some text, $ and quotes included, so escaping is exercised.
        const valueOf = (name: string) => `${secretText}|${name}|$"\\`;
        const rendered = await outcome(() => renderModel(m as Record<string, unknown>, plan, { values: (name) => encoder.encode(valueOf(name)), holder: 'h', vaultId: 'v', configSource: 'agent' }));
        if (!rendered.ok) return void expectClearDsoError(rendered.error, COMPOSE_CODES);
        const out = JSON.parse(new TextDecoder().decode(rendered.value)) as { services: Record<string, { environment: Record<string, string> }> };
        for (const sp of plan.services) {
          for (const e of sp.env) expect(out.services[sp.service]!.environment[e.variable]).toBe(valueOf(e.name).split('$').join('$$'));
          for (const f of sp.files) if (f.variable) expect(out.services[sp.service]!.environment[f.variable]).toBe(f.path);
        }
      }),
      params(),
    );
  });

  test('a value that cannot be an environment variable is refused by name, never shown', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 64 }), async (bytes) => {
        const value = new Uint8Array([...encoder.encode(CANARY), ...bytes]);
        const m = { services: { web: { environment: { DB: 'dso://app/db' } } } };
        const plan = planSecrets(m, new Map(), 'proj');
        const r = await outcome(() => renderModel(m, plan, { values: () => value }));
        if (!r.ok) expect(expectClearDsoError(r.error, COMPOSE_CODES).message).toContain('app/db');
      }),
      params(),
    );
  });
});

describe('regressions found by fuzzing', () => {
  // Each was a TypeError before: a service that is not a mapping, a secrets entry that is null,
  // a target that is not a string.
  test.each([
    ['a service that is null', { services: { web: null } }],
    ['a secrets entry that is null', { services: { web: { secrets: [null] } } }],
    ['a secrets entry without a source', { services: { web: { secrets: [{ target: 'x' }] } } }],
    ['a numeric target', { services: { web: { secrets: [{ source: 'db', target: 5 }] } } }],
  ])('%s is a COMPOSE_FILE error naming the service', (_, m) => {
    const r = (() => {
      try {
        return planSecrets(m as Record<string, unknown>, new Map([['db', 'app/db']]), 'proj');
      } catch (e) {
        return e;
      }
    })();
    expect(expectClearDsoError(r, ['COMPOSE_FILE']).message).toContain('"web"');
  });

  test('a 100 KB reference gives a message of a few hundred characters, not the whole reference', () => {
    for (const raw of [`dso://${'a'.repeat(100_000)}`, `dso://${'P'.repeat(100_000)}:x`, `dsofile://v:x?${'k'.repeat(100_000)}=1`, `dso://v:x#${'#'.repeat(100_000)}`]) {
      let message = '';
      try {
        parseReference(raw, 'here');
      } catch (e) {
        message = expectClearDsoError(e, REFERENCE_CODES).message;
      }
      expect(message.length).toBeGreaterThan(0);
      expect(message.length).toBeLessThan(600);
    }
  });
});

describe('regressions found by fuzzing the rewrite', () => {
  // Each was a TypeError ("Attempted to assign to readonly property", "filter is not a function")
  // half-way through renderModel.
  const plan = (m: Record<string, unknown>) => planSecrets(m, new Map([['db', 'app/db']]), 'proj');
  test.each([
    ['top-level volumes that are a string', { services: { web: { secrets: ['db'] } }, volumes: CANARY }, 'volumes'],
    ['labels that are a string', { services: { web: { environment: { A: 'dso://app/db' }, labels: CANARY } } }, 'labels'],
    ['labels that are a list with a number', { services: { web: { environment: { A: 'dso://app/db' }, labels: [5] } } }, 'labels'],
    ['environment that is a string', { services: { web: { secrets: ['db'], environment: CANARY } } }, 'environment'],
    ['volumes that are a mapping', { services: { web: { secrets: ['db'], volumes: { a: 1 } } } }, 'volumes'],
  ])('%s is a COMPOSE_FILE error', (_, m, what) => {
    let error: unknown;
    try {
      renderModel(m, plan(m), { values: () => encoder.encode('v') });
    } catch (e) {
      error = e;
    }
    expect(expectClearDsoError(error, ['COMPOSE_FILE']).message).toContain(what);
  });
});

// --- Loading through the real Compose (`compose config` needs no engine). Compose's own message
// is passed on as Compose prints it, and Compose quotes values it cannot read (an environment
// value with a broken ${...}): so no canary here, only "a model or a typed error".

const compose: ComposeTool | undefined = (() => {
  try {
    return findCompose(process.env);
  } catch {
    return undefined;
  }
})();

describe('loading a project through Compose', () => {
  test.skipIf(compose === undefined)('arbitrary compose documents load to a model or fail with a typed error', async () => {
    const val = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom('dso://app/db', 'dsofile://vault:a#b', '${X', '$$', null));
    const doc = fc.record(
      {
        services: fc.dictionary(fc.constantFrom('web', 'db', 'a b', ''), fc.record({ image: fc.constantFrom('alpine', 5), environment: fc.oneof(fc.dictionary(fc.string({ maxLength: 5 }), val), val), secrets: fc.oneof(fc.array(fc.oneof(fc.constant('s'), fc.record({ source: val, target: val }))), val) }, { requiredKeys: [] }), { maxKeys: 2 }),
        secrets: fc.oneof(fc.dictionary(fc.constantFrom('s', 't'), fc.oneof(fc.record({ 'x-dso': val }), val)), val),
      },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(doc, async (d) => {
        const dir = join(scratch, `project-${fileNo++}`);
        mkdirSync(dir);
        writeFileSync(join(dir, 'compose.yaml'), stringify(d));
        const r = await outcome(() => loadProject(compose!, { files: [], profiles: [], envFiles: [], other: [] }, dir, { PATH: process.env.PATH, HOME: process.env.HOME, DOCKER_CONFIG: process.env.DOCKER_CONFIG, COMPOSE_PROJECT_NAME: 'fuzz' }));
        if (!r.ok) return void expectClearDsoError(r.error, COMPOSE_CODES, CANARY, Number.POSITIVE_INFINITY);
        // What Compose loads, DSO plans, or refuses by name.
        const planned = await outcome(() => planSecrets(r.value.model, r.value.xdso, r.value.name));
        if (!planned.ok) expectClearDsoError(planned.error, COMPOSE_CODES);
      }),
      // Each run starts Compose (seconds for v1 on a busy machine): a few runs by default.
      params(100),
    );
  });
});

// --- The labels DSO reads back from containers (dso.secrets, dso.env-secrets, dso.files, ...):
// written by DSO, but anyone with access to the engine can set them.

describe('container labels', () => {
  test('describeContainer takes any labels without throwing, and keeps only file entries of the documented shape', async () => {
    const { describeContainer } = await import('../../../src/rotation/inventory.ts');
    const labelValue = fc.oneof(fc.string({ maxLength: 60 }), fc.jsonValue({ maxDepth: 3 }).map((j) => JSON.stringify(j)), fc.constantFrom('A=vault:x,B=app/y', '[{"path":"/run/secrets/a","id":"a","uid":0,"gid":0,"mode":256}]', '{"a":"b"}', '["sh","-c","true"]', ':8080/health', 'false', 'allow'));
    const labels = fc.dictionary(fc.constantFrom('dso.managed', 'dso.secrets', 'dso.env-secrets', 'dso.files', 'dso.versions', 'dso.strategy', 'dso.signal', 'dso.reloader', 'dso.overlap', 'dso.healthcheck.cmd', 'dso.healthcheck.http', 'com.docker.compose.project', 'com.docker.compose.service', 'com.docker.compose.container-number', 'com.docker.compose.depends_on'), labelValue);
    fc.assert(
      fc.property(labels, fc.array(fc.record({ Type: fc.constantFrom('volume', 'bind'), Name: fc.string({ maxLength: 10 }), Destination: fc.constantFrom('/run/secrets', '/data', '/'), RW: fc.boolean(), Source: fc.string({ maxLength: 10 }) }), { maxLength: 3 }), (l, mounts) => {
        const c = describeContainer({ Id: 'c1', Name: '/p-web-1', Config: { Labels: l }, Mounts: mounts, State: { Running: true } } as never);
        for (const f of c.files) expect(f.path.startsWith('/') && f.id.length > 0).toBe(true);
        expect(Array.isArray(c.ids)).toBe(true);
      }),
      params(),
    );
  });
});
