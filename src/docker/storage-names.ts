// The names of DSO's secret volumes and holder containers. Each is derived from who owns it, so
// `up` twice finds the same volume, and cannot be shared by two owners: `_` and `-` are legal in
// project and service names, so joining them is ambiguous (project shop_web with service api, and
// project shop with service web_api, both made `dso_shop_web_api`). A hash of an unambiguous
// encoding of the owner (JSON of the tuple) tells them apart; the readable part is for people
// only, and the owner is in the object's labels (compose/labels.ts), which DSO checks before it
// uses an object it finds. Pure: no I/O.
import { createHash } from 'node:crypto';

/** 80 bits: no two owners on one engine share a name by chance. */
const HASH_HEX = 20;
/** Each readable part is cut to this, so names stay short whatever the project and service are called. */
const READABLE_MAX = 32;

function digest(owner: readonly unknown[]): string {
  return createHash('sha256').update(JSON.stringify(owner)).digest('hex').slice(0, HASH_HEX);
}

/** Only characters Docker allows in names ([a-zA-Z0-9_.-]); the hash, not this, makes a name unique. */
function readable(s: string): string {
  return s.replace(/[^a-zA-Z0-9_.-]/g, '-').slice(0, READABLE_MAX);
}

/**
 * The tmpfs volume for one secret directory of a service: generation `base` is the one the
 * compose model names; a rotation makes a generation of its own (named after the rotation).
 * `dso_PROJECT.SERVICE_HASH`: a Compose project name has no `.`, so the readable part reads
 * unambiguously too.
 */
export function secretVolumeName(project: string, service: string, dir: string, generation = 'base'): string {
  return `dso_${readable(project)}.${readable(service)}_${digest(['secret-volume', project, service, dir, generation])}`;
}

/** The holder that keeps a project's secret volumes mounted, for one set of volumes. */
export function holderName(project: string, volumes: readonly string[]): string {
  return `dso-holder-${readable(project)}-${digest(['holder', project, [...volumes].sort()])}`;
}

/** The holder of the volumes one rotation made for one service. */
export function rotationHolderName(project: string, service: string, rotation: string): string {
  return `dso-holder-${readable(project)}-${digest(['rotation-holder', project, service, rotation])}`;
}
