// The provider kinds DSO knows, each loaded lazily: the definition (schema, environment) on the
// main thread to validate dso.yaml, the client (SDK and all) only inside the provider's own
// Worker or process. Static import strings, so `bun build --compile` bundles every one.
import type { CreateProvider, ProviderDefinition } from './contract.ts';

interface KindModules {
  definition: () => Promise<{ definition: ProviderDefinition<any> }>;
  client: () => Promise<{ createProvider: CreateProvider<any> }>;
}

const KINDS: Record<string, KindModules> = {
  aws: { definition: () => import('../../providers/aws/config.ts'), client: () => import('../../providers/aws/client.ts') },
  azure: { definition: () => import('../../providers/azure/config.ts'), client: () => import('../../providers/azure/client.ts') },
  huawei: { definition: () => import('../../providers/huawei/config.ts'), client: () => import('../../providers/huawei/client.ts') },
  local: { definition: () => import('../../providers/local/config.ts'), client: () => import('../../providers/local/client.ts') },
  plugin: { definition: () => import('../../providers/plugin/config.ts'), client: () => import('../../providers/plugin/client.ts') },
  vault: { definition: () => import('../../providers/vault/config.ts'), client: () => import('../../providers/vault/client.ts') },
};

export const PROVIDER_KINDS: readonly string[] = Object.keys(KINDS).sort();

export function isProviderKind(kind: string): boolean {
  return Object.hasOwn(KINDS, kind);
}

export async function loadDefinition(kind: string): Promise<ProviderDefinition<unknown>> {
  const m = KINDS[kind];
  if (!m) throw new Error(`unknown provider kind ${JSON.stringify(kind)}`);
  return (await m.definition()).definition;
}

export async function loadClient(kind: string): Promise<CreateProvider<unknown>> {
  const m = KINDS[kind];
  if (!m) throw new Error(`unknown provider kind ${JSON.stringify(kind)}`);
  return (await m.client()).createProvider;
}
