import { describe, it, expect } from 'vitest';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { toJUnit, xmlAttr, xmlText } from '../../../../lab/results/reporters/junit.ts';
import { evaluateThresholds } from '../../../../lab/results/thresholds.ts';
import { loadMatrix, makeResults } from '../fixtures.ts';

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '',
  htmlEntities: true, // decode numeric character references (&#10;) too
  trimValues: false,
  parseAttributeValue: false,
  parseTagValue: false,
  isArray: (name) => ['testsuite', 'testcase', 'property', 'failure'].includes(name),
});

interface Failure {
  message: string;
  type: string;
  '#text'?: string;
}
interface TestCase {
  classname: string;
  name: string;
  time: string;
  failure?: Failure[];
  'system-out'?: string;
}
interface TestSuite {
  name: string;
  tests: string;
  failures: string;
  errors: string;
  time: string;
  properties: { property: { name: string; value: string }[] };
  testcase: TestCase[];
}
interface Doc {
  testsuites: { tests: string; failures: string; errors: string; time: string; testsuite: TestSuite[] };
}

function parse(xml: string): Doc {
  expect(XMLValidator.validate(xml)).toBe(true);
  return parser.parse(xml) as Doc;
}

const fig = (durationMs: number, maxGapMs: number) => ({ durationMs, downtimeMs: 50, maxGapMs, lost: 3 });
const results = () =>
  makeResults({
    block: [fig(970, 116.4), fig(1020, 122.4), fig(990, 118.8), { ok: false }],
    shared: [fig(388, 77.6), fig(408, 81.6), fig(396, 79.2)],
  });

describe('toJUnit', () => {
  it('is valid XML with one test case per iteration and counts that add up', () => {
    const r = results();
    const xml = toJUnit(r);
    expect(xml.startsWith('<?xml version="1.0" encoding="UTF-8"?>')).toBe(true);
    const doc = parse(xml);
    const suites = doc.testsuites.testsuite;
    expect(suites).toHaveLength(1); // no checks, no thresholds suite
    const [mig] = suites;
    expect(mig!.name).toBe('migralab fixture: migrations');
    expect(mig!.testcase).toHaveLength(7);
    expect(mig!.tests).toBe('7');
    expect(mig!.failures).toBe('1');
    expect(mig!.errors).toBe('0');
    expect(doc.testsuites.tests).toBe('7');
    expect(doc.testsuites.failures).toBe('1');
    expect(mig!.testcase[0]).toMatchObject({ classname: 'migralab.fixture.block', name: 'block #1 node1 -> node2', time: '0.970' });
    expect(mig!.testcase[1]).toMatchObject({ classname: 'migralab.fixture.shared', name: 'shared #1 node2 -> node1', time: '0.388' });
    // a suite's time is the sum of its cases'
    const sum = mig!.testcase.reduce((a, c) => a + Math.round(Number(c.time) * 1000), 0);
    expect(Math.round(Number(mig!.time) * 1000)).toBe(sum);
    expect(doc.testsuites.time).toBe(mig!.time);
  });

  it('gives a failed iteration a failure with its error and notes', () => {
    const r = results();
    const failed = r.iterations.find((i) => !i.ok)!;
    failed.notes = ['destination QEMU exited', 'guest stayed on source'];
    const doc = parse(toJUnit(r));
    const cases = doc.testsuites.testsuite[0]!.testcase;
    expect(cases.filter((c) => c.failure)).toHaveLength(1);
    const c = cases.find((c) => c.failure)!;
    expect(c.name).toBe(`block #4 ${failed.source} -> ${failed.destination}`);
    expect(c.time).toBe('0.000');
    const f = c.failure![0]!;
    expect(f.message).toContain('migration failed (fixture)');
    expect(f.message).toContain('destination QEMU exited; guest stayed on source');
    expect(f['#text']).toContain('note: guest stayed on source');
  });

  it('adds a thresholds suite, one case per check, a broken one failing with observed vs limit', () => {
    const r = results();
    const checks = evaluateThresholds(r, { maxInterruptionMs: 100, maxFailureRate: 0.5, statistic: 'max' });
    expect(checks).toHaveLength(4);
    const doc = parse(toJUnit(r, checks));
    const [mig, thr] = doc.testsuites.testsuite;
    expect(thr!.name).toBe('migralab fixture: thresholds');
    expect(thr!.tests).toBe('4');
    expect(thr!.testcase).toHaveLength(4);
    const broken = checks.filter((c) => !c.held);
    expect(broken.map((c) => c.name)).toEqual(['block: ping interruption max <= 100 ms']);
    expect(thr!.failures).toBe('1');
    const failing = thr!.testcase.filter((c) => c.failure);
    expect(failing.map((c) => c.name)).toEqual(['block: ping interruption max <= 100 ms']);
    expect(failing[0]!.failure![0]!.message).toContain('observed 122.4 vs limit 100');
    expect(failing[0]!.classname).toBe('migralab.fixture.thresholds.block');
    expect(doc.testsuites.tests).toBe(String(7 + 4));
    expect(doc.testsuites.failures).toBe(String(Number(mig!.failures) + 1));
    expect(doc.testsuites.errors).toBe('0');
  });

  it('names and classes test cases after the matrix cell, thresholds too', () => {
    const m = loadMatrix();
    const checks = evaluateThresholds(m, { maxDurationMs: 10000, statistic: 'max' });
    const doc = parse(toJUnit(m, checks));
    const [mig, thr] = doc.testsuites.testsuite;
    expect(mig!.testcase.map((c) => [c.classname, c.name])).toEqual([
      ['migralab.e2e-fidelity.block, link_rate=unlimited', 'block, link.rate=unlimited #1 controller -> compute1'],
      ['migralab.e2e-fidelity.shared, link_rate=unlimited', 'shared, link.rate=unlimited #1 controller -> compute1'],
      ['migralab.e2e-fidelity.block, link_rate=200Mbit', 'block, link.rate=200Mbit #1 compute1 -> controller'],
      ['migralab.e2e-fidelity.shared, link_rate=200Mbit', 'shared, link.rate=200Mbit #1 compute1 -> controller'],
    ]);
    expect(mig!.testcase.map((c) => c.time)).toEqual(['1.015', '0.645', '14.561', '15.623']);
    expect(mig!.testcase.every((c) => !c.failure && c['system-out'] === undefined)).toBe(true);
    expect(thr!.testcase.map((c) => [c.classname, c.name, Boolean(c.failure)])).toEqual([
      ['migralab.e2e-fidelity.thresholds.block, link_rate=unlimited', 'block, link.rate=unlimited: duration max <= 10000 ms', false],
      ['migralab.e2e-fidelity.thresholds.shared, link_rate=unlimited', 'shared, link.rate=unlimited: duration max <= 10000 ms', false],
      ['migralab.e2e-fidelity.thresholds.block, link_rate=200Mbit', 'block, link.rate=200Mbit: duration max <= 10000 ms', true],
      ['migralab.e2e-fidelity.thresholds.shared, link_rate=200Mbit', 'shared, link.rate=200Mbit: duration max <= 10000 ms', true],
    ]);
    expect(thr!.testcase[2]!.failure![0]!['#text']).toContain('cell: block, link.rate=200Mbit');
  });

  it('says in <system-out>, without failing, that an iteration\'s views contradict each other', () => {
    const m = loadMatrix();
    m.iterations[1]!.crossCheck = ['ping gap 92 ms < QEMU downtime 140 ms: the network saw less than the hypervisor', 'guest clock lost <&> 2 ms'];
    const r = results();
    r.iterations.find((i) => !i.ok)!.crossCheck = ['one flag'];
    for (const [doc, flagged] of [
      [parse(toJUnit(m)), 1],
      [parse(toJUnit(r)), r.iterations.findIndex((i) => !i.ok)],
    ] as const) {
      const cases = doc.testsuites.testsuite[0]!.testcase;
      expect(cases.filter((c) => c['system-out'] !== undefined)).toHaveLength(1);
      expect(cases[flagged]!['system-out']).toMatch(/^cross-check: \d contradictions? between the network, hypervisor and guest views \(not a failure\):\n- /);
    }
    const m1 = parse(toJUnit(m)).testsuites.testsuite[0]!;
    expect(m1.failures).toBe('0');
    expect(m1.testcase[1]!.failure).toBeUndefined();
    expect(m1.testcase[1]!['system-out']).toBe(
      'cross-check: 2 contradictions between the network, hypervisor and guest views (not a failure):\n- ping gap 92 ms < QEMU downtime 140 ms: the network saw less than the hypervisor\n- guest clock lost <&> 2 ms',
    );
    // a failed iteration keeps its failure, the cross-check after it
    const failed = parse(toJUnit(r)).testsuites.testsuite[0]!.testcase.find((c) => c.failure)!;
    expect(failed['system-out']).toContain('- one flag');
    expect(toJUnit(r)).toMatch(/<\/failure>\n\s*<system-out>cross-check: 1 contradiction /);
  });

  it('records the environment as properties', () => {
    const doc = parse(toJUnit(makeResults({ shared: [fig(1, 1)] }, { accelerator: 'tcg', nfsClient: 'qemu' })));
    const props = Object.fromEntries(doc.testsuites.testsuite[0]!.properties.property.map((p) => [p.name, p.value]));
    expect(props).toMatchObject({ accelerator: 'tcg', qemuVersion: '8.2.2', kernel: '6.8.0-45-generic', cpuModel: 'Intel(R) Xeon(R) CPU @ 2.20GHz', nfsClient: 'qemu' });
  });

  it('escapes hostile strings everywhere and replaces characters XML 1.0 forbids', () => {
    const hostile = `<&"'\u0001]]>&lt;\uFFFF\uD800\ttab\r\nend`;
    const r = results();
    r.scenario.name = `s<&"'\u0001`;
    r.environment.kernel = hostile;
    const failed = r.iterations.find((i) => !i.ok)!;
    failed.error = hostile;
    failed.source = hostile;
    failed.notes = [hostile];
    const checks = evaluateThresholds(r, { maxInterruptionMs: 100, statistic: 'max' }).map((c) => ({ ...c, reason: hostile }));
    const xml = toJUnit(r, checks);
    expect(xml).not.toMatch(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\uFFFE\uFFFF]/);
    expect(xml).not.toMatch(/[\uD800-\uDFFF]/);
    expect(xml).not.toContain('<&');
    expect(xml).not.toContain(']]>');
    const doc = parse(xml);
    // what a reader gets back: the same text, forbidden characters as U+FFFD
    const expected = `<&"'\uFFFD]]>&lt;\uFFFD\uFFFD\ttab\r\nend`;
    const [mig, thr] = doc.testsuites.testsuite;
    expect(mig!.name).toBe(`migralab s<&"'\uFFFD: migrations`);
    const c = mig!.testcase.find((c) => c.failure)!;
    expect(c.classname).toBe(`migralab.s<&"'\uFFFD.block`);
    expect(c.name).toBe(`block #4 ${expected} -> ${failed.destination}`);
    expect(c.failure![0]!.message).toBe(`${expected} (notes: ${expected})`);
    expect(c.failure![0]!['#text']).toContain(`error: ${expected.replace('\r\n', '\n')}`); // XML normalizes CRLF in content
    expect(mig!.properties.property.find((p) => p.name === 'kernel')!.value).toBe(expected);
    expect(thr!.testcase.find((t) => t.failure)!.failure![0]!.message).toContain(`(${expected})`);
  });

  it('escapes for text and attributes', () => {
    expect(xmlText(`a<b>&c"'`)).toBe(`a&lt;b&gt;&amp;c"'`);
    expect(xmlAttr(`a<b>&c"'\n\t\r`)).toBe('a&lt;b&gt;&amp;c&quot;&apos;&#10;&#9;&#13;');
    expect(xmlText('\u0000\u001f\u007f\u{1F600}')).toBe('\uFFFD\uFFFD\u007f\u{1F600}');
  });
});
