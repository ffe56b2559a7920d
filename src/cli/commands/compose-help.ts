// Shared help text for the Compose pass-through commands.
export const COMPOSE_DETAILS = `Compose global flags (-f FILE, -p NAME, --profile, --env-file, --project-directory,
--progress, --ansi, --parallel, --compatibility, --dry-run) are honoured; everything else is
passed to Compose unchanged, and Compose's output and exit code are passed back.
DSO uses the \`docker compose\` v2 plugin when present, else \`docker-compose\` v1
(force one with DSO_COMPOSE="docker-compose").

Secret references in \`environment\` (map or list form):
  VAR: dso://NAME                       the variable holds the value (visible to docker inspect)
  VAR: dsofile://NAME[?uid=U&gid=G&mode=0400]
                                        the value is a file in RAM at /run/secrets/NAME, and the
                                        variable holds that path
And the Compose-native form: a top-level secret with \`x-dso: NAME\`, used through a
service's \`secrets:\` list (target, uid, gid and mode are honoured); add
\`environment: DSO_X_DSO_PLACEHOLDER\` beside it so plain \`docker compose ps/logs/exec\` load
the file (DSO ignores it). Values that look like mistyped references (dso:NAME, DSOFILE://NAME)
earn a warning; --strict makes them an error.

NAME is a local vault name (app/db_password), or PROVIDER:PATH[#KEY] for a provider
configured in dso.yaml ($DSO_CONFIG, /etc/dso/dso.yaml or ./dso.yaml), for example
dso://vault:database/url or dsofile://aws:prod/db#password; ?version=V pins a version.
See docs/providers.md.`;
