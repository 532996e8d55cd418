/**
 * A pure writer of the "newc" cpio format (magic 070701), the format the Linux
 * kernel unpacks as an initramfs. No file system access: entries in, bytes out.
 */

export type CpioEntry =
  | { type: 'dir'; path: string; mode?: number }
  | { type: 'file'; path: string; data: Buffer | string; mode?: number }
  | { type: 'symlink'; path: string; target: string }
  /** A character device node (e.g. /dev/console 5:1); the kernel creates it while unpacking. */
  | { type: 'char'; path: string; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

export const CPIO_TRAILER = 'TRAILER!!!';

/** Options that keep archives reproducible: the same entries give the same bytes. */
export interface CpioOptions {
  /** Modification time written into every header (seconds since the epoch). Default 0. */
  mtime?: number;
}

function hex8(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`cpio: field out of range: ${n}`);
  return n.toString(16).padStart(8, '0');
}

function pad4(len: number): number {
  return (4 - (len % 4)) % 4;
}

function normalizePath(p: string): string {
  const s = p.replace(/^\/+/, '');
  if (s === '' || s.split('/').some((part) => part === '' || part === '..')) {
    throw new RangeError(`cpio: bad entry path ${JSON.stringify(p)}`);
  }
  return s;
}

interface Header {
  ino: number;
  mode: number;
  nlink: number;
  mtime: number;
  size: number;
  rdevMajor: number;
  rdevMinor: number;
  name: string;
}

function record(h: Header, data: Buffer): Buffer[] {
  const name = Buffer.from(`${h.name}\0`, 'utf8');
  const header = Buffer.from(
    '070701' +
      hex8(h.ino) +
      hex8(h.mode) +
      hex8(0) + // uid
      hex8(0) + // gid
      hex8(h.nlink) +
      hex8(h.mtime) +
      hex8(h.size) +
      hex8(0) + // devmajor
      hex8(0) + // devminor
      hex8(h.rdevMajor) +
      hex8(h.rdevMinor) +
      hex8(name.length) +
      hex8(0), // check (unused by newc)
    'ascii',
  );
  return [header, name, Buffer.alloc(pad4(header.length + name.length)), data, Buffer.alloc(pad4(data.length))];
}

/** Serializes entries (in the given order) plus the trailer into one newc archive. */
export function writeCpio(entries: readonly CpioEntry[], opts: CpioOptions = {}): Buffer {
  const mtime = opts.mtime ?? 0;
  const parts: Buffer[] = [];
  const seen = new Set<string>();
  let ino = 1;
  for (const e of entries) {
    const name = normalizePath(e.path);
    if (seen.has(name)) throw new RangeError(`cpio: duplicate entry ${name}`);
    seen.add(name);
    let mode: number;
    let data: Buffer = Buffer.alloc(0);
    let nlink = 1;
    let rdevMajor = 0;
    let rdevMinor = 0;
    switch (e.type) {
      case 'dir':
        mode = S_IFDIR | ((e.mode ?? 0o755) & 0o7777);
        nlink = 2;
        break;
      case 'file':
        mode = S_IFREG | ((e.mode ?? 0o644) & 0o7777);
        data = typeof e.data === 'string' ? Buffer.from(e.data, 'utf8') : e.data;
        break;
      case 'symlink':
        if (e.target === '') throw new RangeError(`cpio: empty symlink target for ${name}`);
        mode = S_IFLNK | 0o777;
        data = Buffer.from(e.target, 'utf8');
        break;
      case 'char':
        mode = S_IFCHR | ((e.mode ?? 0o600) & 0o7777);
        rdevMajor = e.major;
        rdevMinor = e.minor;
        break;
    }
    parts.push(...record({ ino: ino++, mode, nlink, mtime, size: data.length, rdevMajor, rdevMinor, name }, data));
  }
  parts.push(...record({ ino: 0, mode: 0, nlink: 1, mtime: 0, size: 0, rdevMajor: 0, rdevMinor: 0, name: CPIO_TRAILER }, Buffer.alloc(0)));
  return Buffer.concat(parts);
}
