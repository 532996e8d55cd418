import { describe, it, expect } from 'vitest';
import { toCsv, csvColumns } from '../../../../lab/results/reporters/csv.ts';
import { loadMatrix, makeResults } from '../fixtures.ts';

/** A small RFC 4180 reader: quoted fields may hold commas, doubled quotes, CR and LF. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"' && field === '') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      i++;
    } else if (c === '\n' || c === '\r' || c === '"') throw new Error(`bare ${JSON.stringify(c)} at ${i}`);
    else field += c;
  }
  if (quoted) throw new Error('unterminated quote');
  if (field !== '' || row.length > 0) throw new Error('last row has no line end');
  return rows;
}

const figures = { durationMs: 1000, downtimeMs: 50, maxGapMs: 120, lost: 3 };
const results = () => makeResults({ block: [figures, figures, figures], shared: [figures, figures, { ok: false }] });

describe('toCsv', () => {
  it('writes a header and one row per iteration, every row as wide as the header, CRLF line ends', () => {
    const r = results();
    const csv = toCsv(r);
    const rows = parseCsv(csv);
    expect(rows).toHaveLength(r.iterations.length + 1);
    expect(rows[0]).toEqual(csvColumns.map(([h]) => h));
    expect(rows[0]).toEqual(expect.arrayContaining(['index', 'qemu.totalTimeMs', 'ping.medianGapMs', 'verified.answersPing', 'notes']));
    for (const row of rows) expect(row).toHaveLength(43);
    expect(csv.endsWith('\r\n')).toBe(true);
    expect(csv.replaceAll('\r\n', '').includes('\n')).toBe(false);
  });

  it('round-trips fields holding commas, quotes and line breaks', () => {
    const r = results();
    const failed = r.iterations.find((i) => !i.ok)!;
    failed.error = 'QMP said "no", then, after a while,\r\nnothing\nat all';
    failed.notes = ['first, with comma', 'second "quoted"', 'third\nline'];
    r.iterations[0]!.source = 'node,1';
    const rows = parseCsv(toCsv(r));
    const col = (name: string) => rows[0]!.indexOf(name);
    const row = rows[failed.index + 1]!;
    expect(row[col('error')]).toBe(failed.error);
    expect(row[col('notes')]).toBe('first, with comma; second "quoted"; third\nline');
    expect(row[col('ok')]).toBe('false');
    expect(rows[1]![col('source')]).toBe('node,1');
  });

  it('writes numbers exactly as results.json holds them, and null as an empty field', () => {
    const r = results();
    const it0 = r.iterations[0]!;
    it0.durationMs = 1234.5678901234567;
    it0.qemu.downtimeMs = 0.1 + 0.2;
    it0.qemu.ramBytes = 274877906944;
    it0.qemu.diskBytes = 0;
    it0.ping.maxRttMs = 1e-7;
    it0.prepareMs = null;
    const rows = parseCsv(toCsv(r));
    const col = (name: string) => rows[0]!.indexOf(name);
    const row = rows[1]!;
    const json = JSON.parse(JSON.stringify(r)).iterations[0];
    expect(row[col('durationMs')]).toBe('1234.5678901234567');
    expect(Number(row[col('durationMs')])).toBe(json.durationMs);
    expect(row[col('qemu.downtimeMs')]).toBe('0.30000000000000004');
    expect(row[col('qemu.ramBytes')]).toBe('274877906944');
    expect(row[col('qemu.diskBytes')]).toBe('0');
    expect(Number(row[col('ping.maxRttMs')])).toBe(1e-7);
    expect(row[col('prepareMs')]).toBe('');
    expect(row[col('error')]).toBe('');
    expect(row[col('index')]).toBe('0');
    expect(row[col('verified.diskIntact')]).toBe('true');
  });

  it('writes the matrix cell, phases, link, guest and harness figures and the cross-check flags of a matrix run', () => {
    const m = loadMatrix();
    m.iterations[3]!.crossCheck = ['ping gap 486 ms < QEMU downtime 505 ms', 'guest clock lost 9 ms, far below the downtime'];
    const rows = parseCsv(toCsv(m));
    const added = [
      'cell',
      'phases.mirrorMs',
      'phases.precopyMs',
      'phases.ramIterations',
      'phases.switchoverMs',
      'phases.resumeMs',
      'link.rateBitsPerSec',
      'link.wireBytes',
      'link.efficiency',
      'guest.clockLossMs',
      'guest.probeMaxGapMs',
      'harness.cpuMs',
      'harness.pingCpuMs',
      'crossCheck',
    ];
    expect(rows[0]).toEqual(expect.arrayContaining(added));
    expect(rows[0]!.indexOf('cell')).toBe(rows[0]!.indexOf('strategy') + 1);
    const col = (name: string) => rows[0]!.indexOf(name);
    const field = (row: string[], name: string) => row[col(name)];
    for (const it of m.iterations) {
      const row = rows[it.index + 1]!;
      expect(field(row, 'cell')).toBe(it.cell!.label);
      expect(field(row, 'phases.mirrorMs')).toBe(it.phases!.mirrorMs === null ? '' : String(it.phases!.mirrorMs));
      expect(Number(field(row, 'phases.precopyMs'))).toBe(it.phases!.precopyMs);
      expect(Number(field(row, 'phases.ramIterations'))).toBe(it.phases!.ramIterations);
      expect(Number(field(row, 'phases.switchoverMs'))).toBe(it.phases!.switchoverMs);
      expect(Number(field(row, 'phases.resumeMs'))).toBe(it.phases!.resumeMs);
      expect(field(row, 'link.rateBitsPerSec')).toBe(it.link!.rateBitsPerSec === null ? '' : String(it.link!.rateBitsPerSec));
      expect(Number(field(row, 'link.wireBytes'))).toBe(it.link!.wireBytes);
      expect(field(row, 'link.efficiency')).toBe(it.link!.efficiency === null ? '' : String(it.link!.efficiency));
      expect(Number(field(row, 'guest.clockLossMs'))).toBe(it.guest!.clockLossMs);
      expect(Number(field(row, 'guest.probeMaxGapMs'))).toBe(it.guest!.probeMaxGapMs);
      expect(Number(field(row, 'harness.cpuMs'))).toBe(it.harness!.cpuMs);
      expect(Number(field(row, 'harness.pingCpuMs'))).toBe(it.harness!.pingCpuMs);
    }
    expect(rows.slice(1).map((r) => field(r, 'cell'))).toEqual(['block, link.rate=unlimited', 'shared, link.rate=unlimited', 'block, link.rate=200Mbit', 'shared, link.rate=200Mbit']);
    expect(field(rows[3]!, 'link.rateBitsPerSec')).toBe('200000000');
    expect(field(rows[3]!, 'link.efficiency')).toBe('0.9555335428692382');
    expect(field(rows[2]!, 'phases.mirrorMs')).toBe(''); // shared: no mirror
    expect(rows.slice(1, 4).map((r) => field(r, 'crossCheck'))).toEqual(['', '', '']);
    expect(field(rows[4]!, 'crossCheck')).toBe('ping gap 486 ms < QEMU downtime 505 ms; guest clock lost 9 ms, far below the downtime');
  });

  it('leaves the new fields empty for results written before them, and names the cell after the strategy', () => {
    const rows = parseCsv(toCsv(results()));
    const col = (name: string) => rows[0]!.indexOf(name);
    expect(rows.slice(1).map((r) => r[col('cell')])).toEqual(['block', 'shared', 'block', 'shared', 'block', 'shared']);
    for (const name of ['phases.precopyMs', 'link.wireBytes', 'guest.clockLossMs', 'harness.cpuMs', 'crossCheck']) expect(rows.slice(1).map((r) => r[col(name)]), name).toEqual(['', '', '', '', '', '']);
  });

  it('is a header alone for a run without iterations', () => {
    const r = results();
    r.iterations = [];
    expect(parseCsv(toCsv(r))).toHaveLength(1);
  });
});
