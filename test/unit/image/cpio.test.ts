import { describe, it, expect } from 'vitest';
import { writeCpio, CPIO_TRAILER, type CpioEntry } from '../../../lab/image/cpio.ts';

interface Parsed {
  name: string;
  mode: number;
  nlink: number;
  mtime: number;
  rdevMajor: number;
  rdevMinor: number;
  data: Buffer;
  headerOffset: number;
}

/** An independent newc reader: checks magic, field widths and 4-byte alignment as it goes. */
function readCpio(buf: Buffer): Parsed[] {
  const out: Parsed[] = [];
  let off = 0;
  for (;;) {
    expect(off % 4).toBe(0);
    const h = buf.subarray(off, off + 110).toString('ascii');
    expect(h.slice(0, 6)).toBe('070701');
    expect(h).toMatch(/^070701[0-9a-f]{104}$/);
    const f = (i: number) => parseInt(h.slice(6 + i * 8, 14 + i * 8), 16);
    const namesize = f(11);
    const filesize = f(6);
    const nameStart = off + 110;
    const name = buf.subarray(nameStart, nameStart + namesize - 1).toString('utf8');
    expect(buf[nameStart + namesize - 1]).toBe(0);
    let dataStart = nameStart + namesize;
    dataStart += (4 - (dataStart % 4)) % 4;
    const data = buf.subarray(dataStart, dataStart + filesize);
    out.push({ name, mode: f(1), nlink: f(4), mtime: f(5), rdevMajor: f(9), rdevMinor: f(10), data, headerOffset: off });
    off = dataStart + filesize;
    off += (4 - (off % 4)) % 4;
    if (name === CPIO_TRAILER) break;
  }
  expect(off).toBe(buf.length);
  return out;
}

describe('writeCpio (newc)', () => {
  const entries: CpioEntry[] = [
    { type: 'dir', path: 'bin' },
    { type: 'dir', path: '/tmp', mode: 0o1777 },
    { type: 'file', path: 'bin/busybox', data: Buffer.from([0x7f, 0x45, 0x4c, 0x46, 1]), mode: 0o755 },
    { type: 'symlink', path: 'bin/sh', target: 'busybox' },
    { type: 'file', path: 'init', data: '#!/bin/sh\necho hi\n', mode: 0o755 },
    { type: 'file', path: 'empty', data: '' },
    { type: 'char', path: 'dev/console', major: 5, minor: 1 },
  ];

  it('writes every entry with the right type bits, permissions and data, then the trailer', () => {
    const parsed = readCpio(writeCpio(entries));
    expect(parsed.map((p) => p.name)).toEqual(['bin', 'tmp', 'bin/busybox', 'bin/sh', 'init', 'empty', 'dev/console', CPIO_TRAILER]);
    const [bin, tmp, busybox, sh, init, empty, console_] = parsed;
    expect(bin!.mode).toBe(0o040755);
    expect(bin!.nlink).toBe(2);
    expect(tmp!.mode).toBe(0o041777);
    expect(busybox!.mode).toBe(0o100755);
    expect([...busybox!.data]).toEqual([0x7f, 0x45, 0x4c, 0x46, 1]);
    expect(sh!.mode).toBe(0o120777);
    expect(sh!.data.toString()).toBe('busybox');
    expect(init!.data.toString()).toBe('#!/bin/sh\necho hi\n');
    expect(empty!.data.length).toBe(0);
    expect(empty!.mode).toBe(0o100644);
    expect(console_!.mode).toBe(0o020600);
    expect([console_!.rdevMajor, console_!.rdevMinor]).toEqual([5, 1]);
  });

  it('pads names and data to 4 bytes for every name length', () => {
    const many: CpioEntry[] = [];
    for (let n = 1; n <= 9; n++) many.push({ type: 'file', path: 'x'.repeat(n), data: 'y'.repeat(n) });
    const parsed = readCpio(writeCpio(many));
    expect(parsed).toHaveLength(10);
    parsed.slice(0, 9).forEach((p, i) => expect(p.data.toString()).toBe('y'.repeat(i + 1)));
  });

  it('is reproducible: same entries, same bytes; mtime is configurable', () => {
    expect(writeCpio(entries).equals(writeCpio(entries))).toBe(true);
    const withTime = readCpio(writeCpio(entries, { mtime: 1_700_000_000 }));
    expect(withTime[0]!.mtime).toBe(1_700_000_000);
  });

  it('an empty archive is just the trailer', () => {
    const buf = writeCpio([]);
    expect(readCpio(buf).map((p) => p.name)).toEqual([CPIO_TRAILER]);
    expect(buf.length % 4).toBe(0);
  });

  it('rejects duplicate, empty and escaping paths', () => {
    expect(() => writeCpio([{ type: 'dir', path: 'a' }, { type: 'dir', path: '/a' }])).toThrow(/duplicate/);
    expect(() => writeCpio([{ type: 'dir', path: '' }])).toThrow(/bad entry path/);
    expect(() => writeCpio([{ type: 'file', path: '../etc/passwd', data: '' }])).toThrow(/bad entry path/);
    expect(() => writeCpio([{ type: 'file', path: 'a//b', data: '' }])).toThrow(/bad entry path/);
    expect(() => writeCpio([{ type: 'symlink', path: 'l', target: '' }])).toThrow(/empty symlink/);
  });
});
