// The commented /etc/dso/dso.yaml that `bootstrap agent` writes on a new host: valid as it is
// (no providers yet), with the decisions a production host needs spelled out in comments.
export function agentConfigTemplate(options: { nonroot: boolean }): string {
  const who = options.nonroot
    ? `# The agent runs as the system user dso. Its socket belongs to dso's group unless group: says
# otherwise: whoever may open the socket may read every secret the providers can. Add people
# with: sudo usermod -aG dso NAME`
    : `# The agent runs as root. Its socket is root's alone until group: names a group: whoever may
# open the socket may read every secret the providers can. Grant it like read access to them.`;
  return `# /etc/dso/dso.yaml: the DSO agent's configuration (written by \`dso bootstrap agent\`).
# Every key: docs/configuration.md. Providers: docs/providers.md. The service: docs/agent.md.
#
# Credentials never go in this file. Name the variables that hold them (token_env: VAULT_TOKEN)
# and give them to setup, which keeps them in /etc/dso/agent.env (mode 0600) for the service:
#   sudo VAULT_TOKEN=... docker dso system setup
# Files the providers read (vaults, passphrase and token files) must be outside /home, /root
# and /tmp: the service cannot see those. /etc/dso or /var/lib/dso are good places.
#
# After a change: sudo docker dso config validate && sudo docker dso system restart

providers: {}
# providers:
#   vault:
#     addr: https://vault.example.com:8200
#     auth: { method: token, token_env: VAULT_TOKEN }
#   local:
#     type: local
#     path: /var/lib/dso/vault.enc
#     passphrase_file: /etc/dso/vault.pass     # mode 0600

agent:
  socket:
    path: /run/dso/dso.sock
    mode: "0660"
${who
  .split('\n')
  .map((l) => `    ${l}`)
  .join('\n')}
    # group: dso-users
    # Rotation (docker dso rotate, the socket's webhook) on a socket of its own, so that reading
    # secrets does not let anyone recreate containers (docs/agent.md, "Trust model"):
    # admin: { path: /run/dso/admin.sock, group: dso-admins }
  # /metrics names secrets and containers; on 127.0.0.1 every local user can read it. On a shared
  # host serve it on a unix socket instead:
  # metrics: { address: "unix:/run/dso/metrics.sock", group: prometheus }
  cache:
    ttl: 1h
    max_secret_size: 10Mi
`;
}
