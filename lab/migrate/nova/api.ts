/**
 * What the nova driver reads from and sends to the compute API (pure: unit-tested without a
 * lab). Every call names its microversion: 2.80 has asynchronous live migration (2.34),
 * `GET /servers/{id}/migrations/{id}` with memory and disk counters (2.23), a server created
 * on a named host through the scheduler (2.74) and `os-migrations` filtered by instance (2.59).
 */
import { envFile } from '../../image/configdrive.ts';
import type { GuestSpec } from '../types.ts';

export const COMPUTE_MICROVERSION = '2.80';
export const computeHeaders = { 'OpenStack-API-Version': `compute ${COMPUTE_MICROVERSION}`, 'X-OpenStack-Nova-API-Version': COMPUTE_MICROVERSION };

/** The image property that gives a guest a second serial port (its control shell) under nova. */
export const SERIAL_PORTS_PROPERTY = 'hw_serial_port_count';

/** nova's live-migration record (`GET /servers/{id}/migrations/{id}`, `GET /os-migrations`). */
export interface NovaMigration {
  id: number;
  status: string;
  source_compute?: string | null;
  dest_compute?: string | null;
  created_at?: string;
  updated_at?: string | null;
  memory_total_bytes?: number | null;
  memory_processed_bytes?: number | null;
  memory_remaining_bytes?: number | null;
  disk_total_bytes?: number | null;
  disk_processed_bytes?: number | null;
  disk_remaining_bytes?: number | null;
}

export interface NovaServer {
  id: string;
  name: string;
  status: string;
  'OS-EXT-SRV-ATTR:host'?: string | null;
  'OS-EXT-SRV-ATTR:instance_name'?: string;
  'OS-EXT-STS:task_state'?: string | null;
  'OS-EXT-STS:vm_state'?: string;
  fault?: { message?: string; details?: string; code?: number };
}

/** The body of `POST /servers`: the guest's port, its host, the config drive with the guest's identity as user_data. */
export function serverBody(g: GuestSpec, p: { image: string; flavor: string; port: string; host: string; lab: string }) {
  return {
    server: {
      name: g.name,
      imageRef: p.image,
      flavorRef: p.flavor,
      networks: [{ port: p.port }],
      host: p.host,
      config_drive: true,
      // the same KEY=value lines migralab's own config drive has (lab/image/init.ts reads either)
      user_data: Buffer.from(envFile({ name: g.name, uuid: g.uuid, ip: g.ip, prefix: g.prefix, mac: g.mac })).toString('base64'),
      metadata: { 'migralab-lab': p.lab, 'migralab-guest': g.name },
    },
  };
}

/** `os-migrateLive` as the tutorial's dashboard sends it: a named host, block migration for block, not for shared. */
export function migrateLiveBody(g: Pick<GuestSpec, 'strategy'>, host: string) {
  return { 'os-migrateLive': { host, block_migration: g.strategy === 'block' } };
}

/** Migration states in the order nova passes through them; a migration ends in one of FINAL. */
export const NOVA_PHASES = ['queued', 'accepted', 'preparing', 'running', 'post-migrating', 'completed'] as const;
export const FINAL = new Set(['completed', 'done', 'finished', 'confirmed', 'error', 'failed', 'cancelled']);
export const FAILED = new Set(['error', 'failed', 'cancelled']);

/** Each status nova reported, when the harness first saw it (ms after the request), and ms between one and the next. */
export function phaseSpans(seen: readonly { status: string; atMs: number }[]): { from: string; to: string; ms: number }[] {
  const out: { from: string; to: string; ms: number }[] = [];
  for (let i = 1; i < seen.length; i++) out.push({ from: seen[i - 1]!.status, to: seen[i]!.status, ms: seen[i]!.atMs - seen[i - 1]!.atMs });
  return out;
}

/** nova's reason for a refused request: the message of its JSON error body (`{"badRequest": {"message": ...}}`), else the text. */
export function novaErrorMessage(body: unknown): string {
  let b = body;
  if (typeof b === 'string') {
    try {
      b = JSON.parse(b);
    } catch {
      return (b as string).trim().slice(0, 400);
    }
  }
  if (b && typeof b === 'object') {
    for (const v of Object.values(b as Record<string, unknown>)) if (v && typeof v === 'object' && typeof (v as { message?: unknown }).message === 'string') return (v as { message: string }).message;
    if (typeof (b as { message?: unknown }).message === 'string') return (b as { message: string }).message;
  }
  return JSON.stringify(b).slice(0, 400);
}

/** The serial ports of a domain nova defined (`virsh dumpxml`): TCP listeners by target port, and the console log file. */
export function serialPortsOfDomainXml(xml: string): { ports: { target: number; host: string; port: number }[]; log: string | null } {
  const ports: { target: number; host: string; port: number }[] = [];
  let log: string | null = null;
  for (const m of xml.matchAll(/<serial type=['"]tcp['"]>([\s\S]*?)<\/serial>/g)) {
    const body = m[1]!;
    const src = /<source\b[^>]*\bhost=['"]([^'"]+)['"][^>]*\bservice=['"](\d+)['"]/.exec(body) ?? /<source\b[^>]*\bservice=['"](\d+)['"][^>]*\bhost=['"]([^'"]+)['"]/.exec(body);
    const target = /<target\b[^>]*\bport=['"](\d+)['"]/.exec(body);
    if (src && target) {
      const [host, port] = /^\d+$/.test(src[1]!) ? [src[2]!, src[1]!] : [src[1]!, src[2]!];
      ports.push({ target: Number(target[1]), host, port: Number(port) });
    }
    log ??= /<log\b[^>]*\bfile=['"]([^'"]+)['"]/.exec(body)?.[1] ?? null;
  }
  ports.sort((a, b) => a.target - b.target);
  return { ports, log };
}

/** The domain's first disk file (nova's root disk: the guest's /dev/vda). */
export function rootDiskOfDomainXml(xml: string): string | null {
  for (const m of xml.matchAll(/<disk type=['"]file['"] device=['"]disk['"]>([\s\S]*?)<\/disk>/g)) {
    const file = /<source\b[^>]*\bfile=['"]([^'"]+)['"]/.exec(m[1]!)?.[1];
    if (file && /<target\b[^>]*\bdev=['"]vda['"]/.test(m[1]!)) return file;
  }
  return null;
}
