// AWS Secrets Manager, Azure Key Vault and Huawei CSMS behind a fault proxy that is down, hangs,
// or answers garbage (HTML, a truncated or cut body, an endless body, JSON of the wrong shape, a
// 502 page), through a real ProviderHost in a Worker and in a child process, for the data call and
// for the login (the instance metadata services, the container credentials endpoint, the default
// chain falling through to the instance metadata service, the AWS SSO portal, Entra ID, Azure's
// managed identity endpoint): every call ends by its timeout in a
// ProviderError that says the backend is at fault, in a short message naming the backend, with
// nothing of the broken answer, a credential or a value in it; and once the backend is back, the
// same host reads the right value again.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../../src/config/load.ts';
import { ProviderError, type ProviderErrorKind } from '../../../src/providers/contract.ts';
import { ProviderHost } from '../../../src/providers/host.ts';
import { startContainerCredentials, startImds, startMoto, type AwsKeys, type ContainerCredentials, type Imds, type Moto, type SessionKeys } from '../../fakes/aws/moto.ts';
import { startSsoPortal, writeSsoTokenCache, type SsoPortal } from '../../fakes/aws/sso-portal.ts';
import { startFakeAzure, type FakeAzure } from '../../fakes/azure/index.ts';
import { startCsmsFake, startMetadataFake, type CsmsFake, type MetadataFake } from '../../fakes/huawei/index.ts';
import { startFaultProxy, type Fault, type FaultProxy, type FaultProxyOptions } from './fault-proxy.ts';

const canary = (label: string) => `${label}-${randomBytes(10).toString('hex')}`;
/** Put into every broken answer: never echoed in a message, never delivered as a value. */
const BAIT = canary('cloud-garbage-bait');
const FAULTS: Fault[] = ['down', 'hang', 'html', 'truncated', 'reset', 'huge', 'wrong-shape', 'bad-gateway'];
/** dso.yaml's `timeout` for every provider here. */
const TIMEOUT_MS = 2000;
/** How late past the timeout a failed call may end. */
const MARGIN_MS = 1000;
/** The longest message accepted: one or two lines an operator reads at a glance. */
const MAX_MESSAGE = 400;
/** How much more memory (peak resident set) an endless answer may cost. */
const HUGE_BUDGET = 256 * 1024 * 1024;

/**
 * What each fault should be reported as: the backend down or cut off is `unavailable`, too slow
 * `timeout`, an answer its API does not document `invalid_response` (an endless one may also be
 * `too_large`). All of them are backend faults.
 */
const KINDS: Record<Fault, ProviderErrorKind[]> = {
  none: [],
  down: ['unavailable'],
  hang: ['timeout'],
  html: ['invalid_response'],
  truncated: ['invalid_response'],
  reset: ['unavailable', 'invalid_response'],
  huge: ['invalid_response', 'too_large'],
  'wrong-shape': ['invalid_response'],
  'bad-gateway': ['unavailable'],
};

const dir = mkdtempSync(join(tmpdir(), 'dso-cloud-garbage-'));
const hosts: ProviderHost[] = [];
const proxies: FaultProxy[] = [];
const text = (b: Uint8Array) => new TextDecoder().decode(b);

async function proxy(upstream: string, options: FaultProxyOptions = {}): Promise<FaultProxy> {
  const p = await startFaultProxy(upstream, BAIT, options);
  proxies.push(p);
  return p;
}

/** A host for the dso.yaml entry `entry` of provider `name`, with DSO's environment `env`. */
async function host(name: string, isolation: 'worker' | 'process', entry: Record<string, unknown>, env: Record<string, string>): Promise<ProviderHost> {
  const cfg = await parseConfig(JSON.stringify({ providers: { [name]: { type: name, isolation, timeout: `${TIMEOUT_MS}ms`, ...entry } } }), join(dir, 'dso.yaml'));
  const h = new ProviderHost({ settings: cfg.providers.get(name)!, env, maxBytes: 4096, backoff: { initialMs: 10, maxMs: 50 } });
  hosts.push(h);
  return h;
}

/** Peak resident memory of process `pid` (this one by default), from /proc. */
function peakRss(pid: number | 'self' = 'self'): number {
  const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb) * 1024;
}

interface Backend {
  /** Provider name and type in dso.yaml. */
  name: string;
  /** What every message about it must name (the service, or the login service). */
  names: RegExp;
  path: string;
  value: () => string;
  /** Credentials, tokens and values: never in a message. */
  needles: () => string[];
}

/**
 * One fault against `h`, then the recovery: the call fails within the timeout with a clean
 * error of a fitting kind, and the same host reads `backend.value()` once the fault is cleared.
 */
async function attack(h: ProviderHost, backend: Backend, faulty: FaultProxy, fault: Fault): Promise<void> {
  await faulty.set(fault);
  const peak = h.status().pid === undefined ? peakRss() : undefined;
  const started = performance.now();
  const outcome = await h.get(backend.path).then(
    (got) => {
      const delivered = text(got.value.expose());
      got.value.wipe();
      return delivered.includes(BAIT) ? 'garbage delivered as a value' : 'a value delivered';
    },
    (e: unknown) => e,
  );
  const took = performance.now() - started;
  const childPeak = h.status().pid === undefined ? undefined : peakRss(h.status().pid!);
  await faulty.set('none');

  expect(outcome).toBeInstanceOf(ProviderError);
  const e = outcome as ProviderError;
  const seen = `${fault}: ${e.kind}: ${e.message}`;
  expect(KINDS[fault], seen).toContain(e.kind);
  expect(e.backendFault, seen).toBe(true);
  expect(took, seen).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
  expect(e.message.length, seen).toBeLessThanOrEqual(MAX_MESSAGE);
  expect(e.message, seen).toMatch(backend.names);
  expect(e.message, seen).not.toContain(BAIT);
  for (const n of backend.needles()) expect(e.message, seen).not.toContain(n);
  // The provider kept its deadline itself: the host did not have to restart it.
  expect(h.status().restarts, seen).toBe(0);
  if (fault === 'huge') {
    if (peak !== undefined) expect(peakRss() - peak, seen).toBeLessThan(HUGE_BUDGET);
    if (childPeak !== undefined) expect(childPeak, seen).toBeLessThan(HUGE_BUDGET * 2);
  }

  // Recovery: no broken token, credential or connection is kept.
  const got = await h.get(backend.path);
  expect(text(got.value.expose()), `after ${fault}`).toBe(backend.value());
  got.value.wipe();
}

afterAll(async () => {
  await Promise.all(hosts.map((h) => h.close()));
  for (const p of proxies) p.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('AWS Secrets Manager', () => {
  const VALUE = canary('aws-value');
  const READ_POLICY = [{ Effect: 'Allow' as const, Action: ['secretsmanager:GetSecretValue'], Resource: '*' }];
  let moto: Moto;
  let imds: Imds;
  let pod: ContainerCredentials;
  let reader: AwsKeys;
  let role: SessionKeys;
  let data: FaultProxy;
  let metadata: FaultProxy;
  let container: FaultProxy;
  let sso: SsoPortal;
  let portal: FaultProxy;
  const backend: Backend = {
    name: 'aws',
    names: /Secrets Manager|metadata service|container credentials endpoint|SSO/,
    path: 'app/db',
    value: () => VALUE,
    needles: () => [VALUE, reader.secretAccessKey, role.secretAccessKey, role.sessionToken, pod.token, sso.accessToken],
  };
  // A failed login names the credential source, a hang included, not only Secrets Manager.
  const viaImds: Backend = { ...backend, names: /the instance metadata service/ };
  const viaContainer: Backend = { ...backend, names: /the container credentials endpoint/ };
  const viaSso: Backend = { ...backend, names: /SSO profile dev/ };

  beforeAll(async () => {
    moto = await startMoto();
    reader = await moto.createUser('dso-garbage-reader', READ_POLICY);
    role = await moto.createRoleSession('dso-garbage-role', READ_POLICY);
    await moto.putSecret('app/db', VALUE);
    await moto.enforceIam();
    imds = startImds(role);
    // SigV4 signs the Host header: the proxy must pass the client's on.
    data = await proxy(moto.url, { keepHost: true, wrongShape: (bait) => ({ ARN: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-AbCdEf', Name: 'app/db', VersionId: 42, SecretString: { value: bait } }) });
    metadata = await proxy(imds.url, { wrongShape: (bait) => ({ Code: 'Success', Type: 'AWS-HMAC', AccessKeyId: { id: bait }, Expiration: 'soon' }) });
    pod = startContainerCredentials(role);
    container = await proxy(new URL(pod.url).origin, { wrongShape: (bait) => ({ AccessKeyId: { id: bait }, SecretAccessKey: 42, Token: bait, Expiration: 'soon' }) });
    sso = startSsoPortal(role);
    portal = await proxy(sso.url, { wrongShape: (bait) => ({ roleCredentials: { accessKeyId: { id: bait }, secretAccessKey: 42, sessionToken: bait, expiration: 'soon' } }) });
  });
  afterAll(async () => {
    await sso?.stop();
    await pod?.stop();
    await imds?.stop();
    await moto?.stop();
  });

  const staticEntry = () => ({ region: moto.region, endpoint: data.url, auth: { method: 'static', access_key_id_env: 'K', secret_access_key_env: 'S' } });
  const staticEnv = () => ({ K: reader.accessKeyId, S: reader.secretAccessKey });

  for (const isolation of ['worker', 'process'] as const) {
    describe(`isolation: ${isolation}, GetSecretValue`, () => {
      let h: ProviderHost;
      beforeAll(async () => {
        h = await host('aws', isolation, staticEntry(), staticEnv());
        expect(text((await h.get('app/db')).value.expose())).toBe(VALUE);
      });
      for (const fault of FAULTS) test(fault, () => attack(h, backend, data, fault));
    });
  }

  for (const isolation of ['worker', 'process'] as const) {
    describe(`isolation: ${isolation}, the instance metadata service (auth: iam)`, () => {
      for (const fault of FAULTS) {
        test(fault, async () => {
          // A new provider each time: it keeps the role's credentials once it has them.
          const h = await host('aws', isolation, { region: moto.region, endpoint: data.url, auth: { method: 'iam' } }, { AWS_EC2_METADATA_SERVICE_ENDPOINT: metadata.url });
          await attack(h, viaImds, metadata, fault);
        });
      }
    });
  }

  for (const isolation of ['worker', 'process'] as const) {
    describe(`isolation: ${isolation}, the container credentials endpoint (auth: iam, EKS Pod Identity)`, () => {
      for (const fault of FAULTS) {
        test(fault, async () => {
          const env = { AWS_CONTAINER_CREDENTIALS_FULL_URI: `${container.url}${new URL(pod.url).pathname}`, AWS_CONTAINER_AUTHORIZATION_TOKEN: pod.token };
          const h = await host('aws', isolation, { region: moto.region, endpoint: data.url, auth: { method: 'iam' } }, env);
          await attack(h, viaContainer, container, fault);
        });
      }
    });
  }

  for (const isolation of ['worker', 'process'] as const) {
    describe(`isolation: ${isolation}, the SSO portal's GetRoleCredentials (auth: sso)`, () => {
      // The profile and the token cache `aws sso login` leaves, as aws.test.ts writes them.
      const ssoHome = () => {
        const home = join(dir, 'home-sso');
        const startUrl = 'https://dso-garbage.awsapps.com/start';
        mkdirSync(join(home, '.aws'), { recursive: true });
        writeFileSync(join(home, '.aws', 'config'), `[profile dev]\nsso_start_url = ${startUrl}\nsso_region = ${moto.region}\nsso_account_id = ${sso.accountId}\nsso_role_name = ${sso.roleName}\n`);
        writeSsoTokenCache(home, startUrl, moto.region, sso.accessToken, new Date(Date.now() + 3600_000));
        // The provider process of a root DSO runs as nobody (docs/providers.md): the profile and
        // its token cache are that account's, as `aws sso login` run by it would leave them.
        chmodSync(dir, 0o711);
        Bun.spawnSync(['chown', '-R', '65534:65534', home], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
        return home;
      };
      for (const fault of FAULTS) {
        test(fault, async () => {
          const entry = { region: moto.region, endpoint: data.url, auth: { method: 'sso', profile: 'dev' }, env: ['AWS_ENDPOINT_URL_SSO'] };
          const h = await host('aws', isolation, entry, { HOME: ssoHome(), AWS_ENDPOINT_URL_SSO: portal.url });
          await attack(h, viaSso, portal, fault);
        });
      }
    });
  }

  for (const isolation of ['worker', 'process'] as const) {
    describe(`isolation: ${isolation}, the default chain with no keys, files or profile: the instance metadata service`, () => {
      for (const fault of FAULTS) {
        test(fault, async () => {
          const env = { AWS_EC2_METADATA_SERVICE_ENDPOINT: metadata.url, HOME: join(dir, 'empty-home') };
          const h = await host('aws', isolation, { region: moto.region, endpoint: data.url, auth: { method: 'default' } }, env);
          await attack(h, viaImds, metadata, fault);
        });
      }
    });
  }
});

describe('Azure Key Vault', () => {
  const SP_CLIENT = '0a1b2c3d-0000-4000-8000-0000000000a1';
  const SP_SECRET = canary('sp-client-secret');
  const VALUE = canary('azure-value');
  let azure: FakeAzure;
  let vault: FaultProxy;
  let entra: FaultProxy;
  let tokenEndpoint: FaultProxy;
  let identity: FaultProxy;
  const backend: Backend = {
    name: 'azure',
    names: /Key Vault|vault|login|Entra/,
    path: 'app-db',
    value: () => VALUE,
    needles: () => [VALUE, SP_SECRET, azure.entra.identityHeader, ...azure.entra.tokens.all()],
  };
  // A failed managed identity login names the identity endpoint, not Entra ID, which it never asked.
  const viaIdentity: Backend = { ...backend, names: /managed identity/ };
  const MI_SYSTEM = '0a1b2c3d-0000-4000-8000-0000000000b2';

  beforeAll(async () => {
    azure = await startFakeAzure();
    azure.entra.addClientSecret(SP_CLIENT, SP_SECRET);
    azure.vault.setSecret('app-db', VALUE);
    const tls = { tls: { cert: azure.ca.serverCert, key: azure.ca.serverKey }, upstreamCa: azure.ca.caPem };
    vault = await proxy(azure.vaultUrl, { ...tls, wrongShape: (bait) => ({ value: { text: bait }, id: 'https://127.0.0.1/secrets/app-db/0123456789abcdef0123456789abcdef', attributes: { enabled: 'yes' } }) });
    // The OpenID configuration names the token endpoint: rewritten to go through the proxy too.
    const wrongShape = (bait: string) => ({ token_type: 'Bearer', access_token: { token: bait }, expires_in: 'soon', token_endpoint: 42 });
    entra = await proxy(azure.authorityHost, { ...tls, rewriteOrigin: true, wrongShape });
    tokenEndpoint = await proxy(azure.authorityHost, { ...tls, rewriteOrigin: true, wrongShape, only: /\/oauth2\/v2\.0\/token$/ });
    azure.entra.setManagedIdentities(MI_SYSTEM, []);
    // The identity endpoint (App Service's, IMDS's) is plain HTTP on the host or the link-local address.
    identity = await proxy(azure.entra.imdsHost, { wrongShape: (bait) => ({ access_token: { token: bait }, expires_on: 'soon', resource: 42, token_type: 'Bearer' }) });
  });
  afterAll(() => azure?.stop());

  const entry = (login = entra) => ({
    vault_url: vault.url,
    authority_host: login.url,
    tls: { ca_cert: azure.caFile },
    auth: { method: 'client_secret', tenant_id: azure.tenantId, client_id: SP_CLIENT, client_secret_env: 'AZ_SECRET' },
  });

  for (const isolation of ['worker', 'process'] as const) {
    describe(`isolation: ${isolation}, GET /secrets`, () => {
      let h: ProviderHost;
      beforeAll(async () => {
        h = await host('azure', isolation, entry(), { AZ_SECRET: SP_SECRET });
        expect(text((await h.get('app-db')).value.expose())).toBe(VALUE);
      });
      for (const fault of FAULTS) test(fault, () => attack(h, backend, vault, fault));
    });
  }

  for (const isolation of ['worker', 'process'] as const) {
    describe(`isolation: ${isolation}, the Entra ID login (client secret): its OpenID configuration`, () => {
      for (const fault of FAULTS) {
        test(fault, async () => {
          // A new provider each time: MSAL keeps a token (and the tenant's endpoints) once it has them.
          const h = await host('azure', isolation, entry(), { AZ_SECRET: SP_SECRET });
          await attack(h, backend, entra, fault);
        });
      }
    });
  }

  const miEntry = () => ({ vault_url: vault.url, tls: { ca_cert: azure.caFile }, auth: { method: 'managed_identity' } });
  for (const isolation of ['worker', 'process'] as const) {
    describe(`isolation: ${isolation}, the managed identity endpoint (auth: managed_identity, App Service)`, () => {
      for (const fault of FAULTS) {
        test(fault, async () => {
          const env = { IDENTITY_ENDPOINT: `${identity.url}${new URL(azure.entra.identityEndpoint).pathname}`, IDENTITY_HEADER: azure.entra.identityHeader };
          const h = await host('azure', isolation, miEntry(), env);
          await attack(h, viaIdentity, identity, fault);
        });
      }
    });
  }

  describe('isolation: worker, the managed identity endpoint (auth: managed_identity, IMDS through AZURE_POD_IDENTITY_AUTHORITY_HOST)', () => {
    for (const fault of FAULTS) {
      test(fault, async () => {
        const h = await host('azure', 'worker', miEntry(), { AZURE_POD_IDENTITY_AUTHORITY_HOST: identity.url });
        await attack(h, viaIdentity, identity, fault);
      });
    }
  });

  describe('isolation: worker, the Entra ID login (client secret): its token endpoint', () => {
    for (const fault of FAULTS) {
      test(fault, async () => {
        const h = await host('azure', 'worker', entry(tokenEndpoint), { AZ_SECRET: SP_SECRET });
        await attack(h, backend, tokenEndpoint, fault);
      });
    }
  });
});

describe('Huawei CSMS', () => {
  const AK = 'HPUAGARBAGEEXAMPLE01';
  const SK = canary('hw-sk');
  const VALUE = canary('hw-value');
  let csms: CsmsFake;
  let ecs: MetadataFake;
  let data: FaultProxy;
  let metadata: FaultProxy;
  const backend: Backend = {
    name: 'huawei',
    // A login that hangs names the metadata service too, not only that the provider was not ready.
    names: /CSMS|metadata service/,
    path: 'app-db',
    value: () => VALUE,
    needles: () => [VALUE, SK, ...(ecs.current ? [ecs.current.secret, ecs.current.securitytoken] : [])],
  };

  beforeAll(async () => {
    csms = startCsmsFake();
    ecs = startMetadataFake(csms);
    csms.addCredential({ ak: AK, sk: SK });
    csms.putString('app-db', VALUE);
    // The AK/SK signature covers the Host header.
    data = await proxy(csms.url, { keepHost: true, wrongShape: (bait) => ({ version: { version_metadata: { id: 'v1', secret_name: 'app-db' }, secret_string: { value: bait } } }) });
    metadata = await proxy(ecs.url, { wrongShape: (bait) => ({ credential: { access: { id: bait }, secret: 42, expires_at: 'soon' } }) });
  });
  afterAll(async () => {
    await ecs?.stop();
    await csms?.stop();
  });

  const entry = (auth: Record<string, unknown>) => ({ region: 'cn-north-4', project_id: csms.projectId, endpoint: data.url, auth });

  for (const isolation of ['worker', 'process'] as const) {
    describe(`isolation: ${isolation}, ShowSecretVersion`, () => {
      let h: ProviderHost;
      beforeAll(async () => {
        h = await host('huawei', isolation, entry({ method: 'aksk', access_key_env: 'HW_AK', secret_key_env: 'HW_SK' }), { HW_AK: AK, HW_SK: SK });
        expect(text((await h.get('app-db')).value.expose())).toBe(VALUE);
      });
      for (const fault of FAULTS) test(fault, () => attack(h, backend, data, fault));
    });
  }

  for (const isolation of ['worker', 'process'] as const) {
    describe(`isolation: ${isolation}, the ECS metadata service (auth: metadata)`, () => {
      for (const fault of FAULTS) {
        test(fault, async () => {
          // A new provider each time: it keeps the agency's credentials until they near expiry.
          const h = await host('huawei', isolation, entry({ method: 'metadata', endpoint: metadata.url }), {});
          await attack(h, backend, metadata, fault);
        });
      }
    });
  }
});
