// The Docker CLI plugin protocol: the metadata answer, and recognising a plugin invocation
// (`docker dso ARGS` runs `docker-dso dso ARGS`).
import { VERSION } from '../version.ts';

export const PLUGIN_METADATA_COMMAND = 'docker-cli-plugin-metadata';

export function pluginMetadata(): string {
  return `${JSON.stringify({
    SchemaVersion: '0.1.0',
    Vendor: 'DSO',
    Version: VERSION,
    ShortDescription: 'Docker Secret Operator: secrets for Compose, kept off disk',
  })}\n`;
}

/** True when the Docker CLI started us as its `dso` plugin. */
export function invokedAsPlugin(argv0: string, argv: readonly string[], env: Record<string, string | undefined>): boolean {
  const base = argv0.split('/').pop() ?? '';
  return argv[0] === 'dso' && (base.startsWith('docker-') || env.DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND !== undefined);
}
