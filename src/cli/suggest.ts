// "Did you mean": the closest known word to a mistyped command, subcommand or flag, and the
// Compose commands people type at `docker dso` that live under `docker dso compose`.

/** Compose v2 commands that DSO has no top-level command for (up, down and version it has). */
export const COMPOSE_COMMANDS: readonly string[] = [
  'attach', 'build', 'config', 'cp', 'create', 'events', 'exec', 'images', 'kill', 'logs', 'ls', 'pause', 'port', 'ps',
  'pull', 'push', 'restart', 'rm', 'run', 'scale', 'start', 'stats', 'stop', 'top', 'unpause', 'wait', 'watch',
];

/**
 * Edit distance with transpositions (optimal string alignment): `upp`, `lsit` and `scret` are one
 * edit from `up`, `list` and `secret`.
 */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) => Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The known words closest to `typed`, if any is close enough to be what was meant: the one word
 * `typed` is the start of (`sec` for `secret`), else those at the smallest edit distance, at most
 * one edit away for short words and two for longer ones (ties are all returned, at most three).
 */
export function closest(typed: string, known: readonly string[]): string[] {
  const word = typed.toLowerCase();
  if (word === '') return [];
  const exact = known.find((k) => k.toLowerCase() === word);
  if (exact) return [exact];
  const prefixed = known.filter((k) => k.startsWith(word));
  if (prefixed.length === 1 && word.length >= 2) return prefixed;
  const limit = word.length <= 4 ? 1 : 2;
  const scored = known.map((k) => ({ k, distance: editDistance(word, k.toLowerCase()) })).filter((s) => s.distance <= limit);
  const best = Math.min(...scored.map((s) => s.distance));
  return scored.filter((s) => s.distance === best).map((s) => s.k).slice(0, 3);
}

/** `a`, `a or b`, `a, b or c`. */
export function orList(items: readonly string[]): string {
  return items.length <= 1 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} or ${items.at(-1)}`;
}
