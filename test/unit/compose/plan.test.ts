// The plan names each service's secret storage after its owner, so no two owners share it, and
// gives secret files the owner the compose file asks for, across the whole range of Linux ids.
import { describe, expect, test } from 'bun:test';
import { planSecrets } from '../../../src/compose/plan.ts';
import { holderName, rotationHolderName, secretVolumeName } from '../../../src/docker/storage-names.ts';
import { DsoError } from '../../../src/errors.ts';

const DOCKER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

function fileService(extra: Record<string, unknown> = {}, ref = 'dsofile://app/key') {
  return { image: 'busybox', environment: { KEY_FILE: ref }, ...extra };
}

function volumesOf(project: string, services: Record<string, unknown>, xdso = new Map<string, string>()): string[] {
  return planSecrets({ services }, xdso, project).services.flatMap((s) => s.mounts.map((m) => m.volume));
}

describe('secret volume names', () => {
  test('project shop_web with service api and project shop with service web_api get different volumes', () => {
    const [a] = volumesOf('shop_web', { api: fileService() });
    const [b] = volumesOf('shop', { web_api: fileService() });
    expect(a).toBeDefined();
    expect(a).not.toBe(b!);
    expect(holderName('shop_web', [a!])).not.toBe(holderName('shop', [b!]));
  });

  test('the same project, service and directory get the same name each time (up twice reuses it)', () => {
    expect(volumesOf('shop', { api: fileService() })).toEqual(volumesOf('shop', { api: fileService() }));
  });

  test('each secret directory of a service has its own volume', () => {
    const names = volumesOf('shop', { api: fileService({ secrets: [{ source: 'tls', target: '/etc/tls/key.pem' }] }) }, new Map([['tls', 'app/tls']]));
    expect(names.length).toBe(2);
    expect(new Set(names).size).toBe(2);
  });

  test('names are valid Docker names of bounded length, however long or odd the owner', () => {
    const names = [
      secretVolumeName('p'.repeat(300), 's'.repeat(300), '/run/secrets'),
      secretVolumeName('x', 'Svc.With.Dots', '/opt/app/secrets'),
      holderName('p'.repeat(300), ['a', 'b']),
      rotationHolderName('p'.repeat(300), 'svc', 'rabc123'),
    ];
    for (const n of names) {
      expect(n).toMatch(DOCKER_NAME);
      expect(n.length).toBeLessThanOrEqual(100);
    }
  });

  test('rotation generations differ from the base volume, from each other, and between owners', () => {
    const all = [
      secretVolumeName('shop', 'web_api', '/run/secrets'),
      secretVolumeName('shop', 'web_api', '/run/secrets', 'r1'),
      secretVolumeName('shop', 'web_api', '/run/secrets', 'r2'),
      secretVolumeName('shop_web', 'api', '/run/secrets', 'r1'),
      rotationHolderName('shop', 'web_api', 'r1'),
      rotationHolderName('shop_web', 'api', 'r1'),
    ];
    expect(new Set(all).size).toBe(all.length);
  });

  test('the readable part shows project and service', () => {
    const [name] = volumesOf('shop_web', { api: fileService() });
    expect(name).toStartWith('dso_shop_web.api_');
  });
});

describe('owners of secret files', () => {
  const owner = (services: Record<string, unknown>, xdso = new Map<string, string>()) =>
    planSecrets({ services }, xdso, 'p').services.flatMap((s) => s.files.map((f) => [f.uid, f.gid]));

  test('a service user above 2,097,151 owns its files (user: "1000680000")', () => {
    expect(owner({ app: fileService({ user: '1000680000' }) })).toEqual([[1000680000, 1000680000]]);
    expect(owner({ app: fileService({ user: '1000680000:0' }) })).toEqual([[1000680000, 0]]);
  });

  test('uid and gid up to 4294967294 are accepted on an x-dso use', () => {
    const services = { app: { image: 'busybox', secrets: [{ source: 'k', uid: '4294967294', gid: '4294967294' }] } };
    expect(owner(services, new Map([['k', 'app/k']]))).toEqual([[4294967294, 4294967294]]);
  });

  test('?uid= and ?gid= up to 4294967294 are accepted on dsofile://, 4294967295 ((uid_t)-1) is not', () => {
    expect(owner({ app: fileService({}, 'dsofile://app/key?uid=4294967294') })).toEqual([[4294967294, 4294967294]]);
    expect(() => owner({ app: fileService({}, 'dsofile://app/key?uid=4294967295') })).toThrow(/uid must be a numeric id/);
    expect(() => owner({ app: fileService({}, 'dsofile://app/key?gid=4294967295') })).toThrow(/gid must be a numeric id/);
  });

  test('ids above 4294967294 are refused with a message naming the service', () => {
    const refused = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        expect(e).toBeInstanceOf(DsoError);
        expect((e as DsoError).message).toContain('"app"');
        return;
      }
      throw new Error('not refused');
    };
    refused(() => owner({ app: { image: 'busybox', secrets: [{ source: 'k', uid: '4294967295' }] } }, new Map([['k', 'app/k']])));
    refused(() => owner({ app: { image: 'busybox', secrets: [{ source: 'k', gid: '9999999999' }] } }, new Map([['k', 'app/k']])));
    refused(() => owner({ app: fileService({ user: '4294967295' }) }));
    refused(() => owner({ app: fileService({ user: '1000:99999999999' }) }));
  });
});
