/**
 * The instance's config drive: a small raw vfat image labelled `config-2`, laid out
 * like nova's (openstack/latest/{meta_data,network_data}.json), plus `migralab/env`
 * for the busybox init. Built with mkfs.vfat and mtools: nothing is mounted.
 */
import { isIPv4 } from 'node:net';
import { open, rm } from 'node:fs/promises';
import { MigralabError } from '../errors.ts';
import { run } from '../exec/run.ts';
import { CONFIG_DRIVE_LABEL, CONFIG_ENV_PATH } from './init.ts';

export interface ConfigDriveMeta {
  /** Host name of the guest: one DNS label (letters, digits, '-'). */
  name: string;
  uuid: string;
  ip: string;
  /** IPv4 prefix length, 1..32. */
  prefix: number;
  /** Unicast MAC like 52:54:00:12:34:56. */
  mac: string;
  gateway?: string;
}

/** Size of the image: small and fixed (nova's vfat drive is 64 MiB; ours holds a few hundred bytes). */
export const CONFIG_DRIVE_BYTES = 1024 * 1024;

const NAME_RE = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MAC_RE = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/i;

/** Checks every field (so nothing odd reaches the guest's shell) and normalizes MAC/UUID to lower case. */
export function validateMeta(meta: ConfigDriveMeta): ConfigDriveMeta {
  const bad = (field: string, expected: string, value: unknown): never => {
    throw new MigralabError('CONFIG', `config drive ${field}: expected ${expected}, got ${JSON.stringify(value)}`);
  };
  if (typeof meta.name !== 'string' || !NAME_RE.test(meta.name)) {
    bad('name', 'a host name label (1-63 letters, digits or "-", not starting or ending with "-")', meta.name);
  }
  if (typeof meta.uuid !== 'string' || !UUID_RE.test(meta.uuid)) bad('uuid', 'a UUID like 8-4-4-4-12 hex digits', meta.uuid);
  if (typeof meta.ip !== 'string' || !isIPv4(meta.ip)) bad('ip', 'an IPv4 address', meta.ip);
  if (!Number.isInteger(meta.prefix) || meta.prefix < 1 || meta.prefix > 32) bad('prefix', 'an integer prefix length 1..32', meta.prefix);
  if (typeof meta.mac !== 'string' || !MAC_RE.test(meta.mac)) bad('mac', 'a MAC address like 52:54:00:12:34:56', meta.mac);
  const firstOctet = parseInt(meta.mac.slice(0, 2), 16);
  if (firstOctet & 1) bad('mac', 'a unicast MAC (first octet even)', meta.mac);
  if (meta.gateway !== undefined && (typeof meta.gateway !== 'string' || !isIPv4(meta.gateway))) {
    bad('gateway', 'an IPv4 address', meta.gateway);
  }
  const out: ConfigDriveMeta = { ...meta, uuid: meta.uuid.toLowerCase(), mac: meta.mac.toLowerCase() };
  if (meta.gateway === undefined) delete out.gateway;
  return out;
}

/** The `migralab/env` file read by the guest's init: KEY=value lines, valid shell, no quoting needed. */
export function envFile(meta: ConfigDriveMeta): string {
  const m = validateMeta(meta);
  const lines = [`NAME=${m.name}`, `UUID=${m.uuid}`, `IP=${m.ip}`, `PREFIX=${m.prefix}`, `MAC=${m.mac}`];
  if (m.gateway) lines.push(`GATEWAY=${m.gateway}`);
  return `${lines.join('\n')}\n`;
}

function prefixToNetmask(prefix: number): string {
  const bits = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return [24, 16, 8, 0].map((s) => (bits >>> s) & 0xff).join('.');
}

/** nova's `openstack/latest/meta_data.json` (the fields a guest agent commonly reads). */
export function metaDataJson(meta: ConfigDriveMeta): string {
  const m = validateMeta(meta);
  return `${JSON.stringify(
    {
      uuid: m.uuid,
      name: m.name,
      hostname: m.name,
      launch_index: 0,
      availability_zone: 'nova',
      meta: {},
      public_keys: {},
      keys: [],
      devices: [],
    },
    null,
    2,
  )}\n`;
}

/** nova's `openstack/latest/network_data.json`: one link, one static IPv4 network. */
export function networkDataJson(meta: ConfigDriveMeta): string {
  const m = validateMeta(meta);
  const routes = m.gateway ? [{ network: '0.0.0.0', netmask: '0.0.0.0', gateway: m.gateway }] : [];
  return `${JSON.stringify(
    {
      links: [{ id: 'tap0', type: 'phy', ethernet_mac_address: m.mac, mtu: 1500, vif_id: m.uuid }],
      networks: [
        {
          id: 'network0',
          type: 'ipv4',
          link: 'tap0',
          ip_address: m.ip,
          netmask: prefixToNetmask(m.prefix),
          routes,
          network_id: 'migralab',
        },
      ],
      services: [],
    },
    null,
    2,
  )}\n`;
}

/** Writes a fresh config drive image at `path` (replacing any file there). */
export async function makeConfigDrive(path: string, meta: ConfigDriveMeta): Promise<void> {
  const m = validateMeta(meta);
  await rm(path, { force: true });
  const fh = await open(path, 'wx', 0o644);
  try {
    await fh.truncate(CONFIG_DRIVE_BYTES);
  } finally {
    await fh.close();
  }
  try {
    // A volume id derived from the uuid keeps the image reproducible.
    await run(['mkfs.vfat', '-n', CONFIG_DRIVE_LABEL, '-i', m.uuid.slice(0, 8), path], { timeoutMs: 30_000 });
    await run(['mmd', '-i', path, '::/openstack', '::/openstack/latest', '::/migralab'], { timeoutMs: 30_000 });
    const files: [string, string][] = [
      ['openstack/latest/meta_data.json', metaDataJson(m)],
      ['openstack/latest/network_data.json', networkDataJson(m)],
      [CONFIG_ENV_PATH, envFile(m)],
    ];
    for (const [dest, text] of files) {
      await run(['mcopy', '-i', path, '-', `::/${dest}`], { input: text, timeoutMs: 30_000 });
    }
  } catch (e) {
    await rm(path, { force: true });
    if (e instanceof MigralabError && /program not found/.test(e.message)) {
      throw new MigralabError('PREREQ', `${e.message}: install the Debian packages dosfstools and mtools`, { cause: e });
    }
    throw e;
  }
}
