// The DSO version, shared by the CLI, the plugin metadata and (later) the agent.
import pkg from '../package.json' with { type: 'json' };

export const VERSION: string = pkg.version;
