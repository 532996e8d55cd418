/**
 * The guest's RAM check (lab/image/guest-programs/ramcheck.h), compiled for this host and
 * run on working sets built here: intact, one lost page, the edge, counter wrap-around,
 * corruption.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { execa } from 'execa';

const PAGE = 4096;
const MAGIC = 0x6d6c72616d000000n;

/** ram_end_word of ramcheck.h, in BigInt. */
function endWord(index: bigint, gen: bigint): bigint {
  const M = (1n << 64n) - 1n;
  let x = ((index << 32n) ^ gen ^ 0x9e3779b97f4a7c15n) & M;
  x ^= x >> 29n;
  x = (x * 0xbf58476d1ce4e5b9n) & M;
  return x ^ (x >> 32n);
}

/** A working set as the writer leaves it: pages below `next` at `gen`, the rest at gen - 1. */
function workingSet(pages: number, next: number, gen: number, edit?: (buf: Buffer) => void): Buffer {
  const buf = Buffer.alloc(pages * PAGE, 0x5a);
  for (let i = 0; i < pages; i++) writePage(buf, i, (i < next ? gen : gen - 1) >>> 0);
  edit?.(buf);
  return buf;
}

function writePage(buf: Buffer, i: number, gen: number): void {
  const o = i * PAGE;
  buf.writeBigUInt64LE(MAGIC ^ BigInt(i), o);
  buf.writeBigUInt64LE(BigInt(gen), o + 8);
  buf.writeBigUInt64LE(endWord(BigInt(i), BigInt(gen)), o + PAGE - 8);
}

let dir: string;
let mlload: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ramcheck-'));
  mlload = join(dir, 'mlload');
  await execa('gcc', ['-O2', '-Wall', '-Wextra', '-std=gnu11', '-o', mlload, 'lab/image/guest-programs/mlload.c']);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function check(buf: Buffer, next: number, gen: number): Promise<{ exitCode: number; fields: Record<string, string> }> {
  const file = join(dir, `ws-${Math.random().toString(36).slice(2)}`);
  writeFileSync(file, buf);
  const r = await execa(mlload, ['ramcheck', file, String(next), String(gen)], { reject: false });
  const fields = Object.fromEntries(r.stdout.trim().split(/\s+/).map((kv) => kv.split('=') as [string, string]));
  return { exitCode: r.exitCode ?? -1, fields };
}

describe('the RAM check of the memory writer', () => {
  it('finds nothing wrong in an intact working set, at any edge', async () => {
    for (const next of [0, 1, 17, 63]) {
      const r = await check(workingSet(64, next, 5), next, 5);
      expect(r.exitCode, `edge at ${next}`).toBe(0);
      expect(r.fields).toMatchObject({ ramPagesChecked: '64', ramPagesBad: '0', ramFirstBadIndex: '-1', ramFirstBadKind: 'none' });
    }
  });

  it('names one lost write: a page that kept the generation before', async () => {
    const r = await check(workingSet(64, 40, 9, (b) => writePage(b, 12, 8)), 40, 9);
    expect(r.exitCode).toBe(1);
    expect(r.fields).toMatchObject({ ramPagesBad: '1', ramFirstBadIndex: '12', ramFirstBadExpected: '9', ramFirstBadFound: '8', ramFirstBadKind: 'stale' });
  });

  it('counts the edge right: the page at the next position still holds the old generation, the one before it the new', async () => {
    // a writer whose next page is 40 must not have written page 40 yet...
    const early = await check(workingSet(64, 41, 9), 40, 9);
    expect(early.fields).toMatchObject({ ramPagesBad: '1', ramFirstBadIndex: '40', ramFirstBadExpected: '8', ramFirstBadFound: '9' });
    // ...and must have written page 39
    const late = await check(workingSet(64, 39, 9), 40, 9);
    expect(late.fields).toMatchObject({ ramPagesBad: '1', ramFirstBadIndex: '39', ramFirstBadExpected: '9', ramFirstBadFound: '8', ramFirstBadKind: 'stale' });
  });

  it('wraps around the 32-bit generation counter', async () => {
    // generation 0 after 0xffffffff: pages below the edge at 0, the rest at 0xffffffff
    const buf = workingSet(32, 10, 0);
    const r = await check(buf, 10, 0);
    expect(r.exitCode).toBe(0);
    expect(r.fields.ramPagesBad).toBe('0');
    const lost = await check(workingSet(32, 10, 0, (b) => writePage(b, 3, 0xffffffff)), 10, 0);
    expect(lost.fields).toMatchObject({ ramPagesBad: '1', ramFirstBadIndex: '3', ramFirstBadExpected: '0', ramFirstBadFound: '4294967295', ramFirstBadKind: 'stale' });
  });

  it('calls a page with a wrong index or end word corrupt, and counts every bad page', async () => {
    const r = await check(
      workingSet(64, 20, 3, (b) => {
        b.fill(0, 5 * PAGE, 6 * PAGE); // a zeroed page
        b.writeBigUInt64LE(123n, 30 * PAGE + PAGE - 8); // a torn one: its end from another write
      }),
      20,
      3,
    );
    expect(r.exitCode).toBe(1);
    expect(r.fields).toMatchObject({ ramPagesBad: '2', ramFirstBadIndex: '5', ramFirstBadKind: 'corrupt' });
  });
});
