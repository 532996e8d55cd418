import type { IterationResult, Results } from '../schema.ts';
import type { ThresholdCheck } from '../thresholds.ts';
import { cellOf } from '../cells.ts';
import { fileReporter } from './reporter.ts';

/**
 * JUnit XML export, the dialect CI systems read (Jenkins, GitLab, GitHub test-report
 * actions): `<testsuites>` holding a "migrations" suite with one test case per
 * iteration and, when there are threshold checks, a "thresholds" suite with one test
 * case per check. A failed iteration or a broken threshold is a `<failure>`; `errors`
 * is always 0 (the harness records what went wrong as a failed iteration). Each suite
 * carries the environment as `<properties>`. Test cases are named after the matrix cell
 * (`block, link.rate=400Mbit #2 node1 -> node2`; the strategy without matrix axes) and
 * classed by it, `migralab.<scenario>.<cell>` with the cell's dots written as `_` (CI
 * systems read dots in a classname as packages). An iteration whose network, hypervisor
 * and guest views contradict each other (crossCheck) passes, with the contradictions in
 * its `<system-out>`.
 *
 * Times are seconds with millisecond resolution: an iteration's time is its
 * `durationMs` (0 when it has none, e.g. it failed before the request), a threshold's
 * is 0; a suite's time is the sum of its cases', `<testsuites>`' the sum of the suites'.
 */

const FORBIDDEN = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

/**
 * XML 1.0 allows only #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] |
 * [#x10000-#x10FFFF]; anything else (C0 controls, lone surrogates, U+FFFE/U+FFFF)
 * cannot be written even as a character reference, so it becomes U+FFFD, the
 * replacement character: a reader still sees that something was there.
 */
export function xmlSafe(s: string): string {
  return s.replace(FORBIDDEN, '\uFFFD');
}

/** Escape for element content. */
export function xmlText(s: string): string {
  return xmlSafe(s).replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

/** Escape for a quoted attribute value; tab, LF and CR as references so attribute normalization keeps them. */
export function xmlAttr(s: string): string {
  return xmlText(s).replaceAll('"', '&quot;').replaceAll("'", '&apos;').replaceAll('\t', '&#9;').replaceAll('\n', '&#10;').replaceAll('\r', '&#13;');
}

function attrs(a: Record<string, string | number | undefined>): string {
  return Object.entries(a)
    .filter((e): e is [string, string | number] => e[1] !== undefined)
    .map(([k, v]) => ` ${k}="${xmlAttr(String(v))}"`)
    .join('');
}

/** Whole milliseconds, so suite sums equal the sum of the printed case times exactly. */
const wholeMs = (ms: number | null | undefined) => (typeof ms === 'number' && Number.isFinite(ms) && ms > 0 ? Math.round(ms) : 0);
const seconds = (ms: number) => (ms / 1000).toFixed(3);

interface Case {
  classname: string;
  name: string;
  ms: number;
  failure?: { message: string; type: string; body: string };
  systemOut?: string;
}

interface Suite {
  name: string;
  cases: Case[];
}

const num = (v: number | null | undefined) => (v === null || v === undefined ? 'none' : String(v));

/** A cell label as one classname segment: its dots would read as packages. */
const classSegment = (label: string) => label.replaceAll('.', '_');

function iterationCase(scenario: string, it: IterationResult): Case {
  const cell = cellOf(it).label;
  const c: Case = {
    classname: `migralab.${scenario}.${classSegment(cell)}`,
    name: `${cell} #${it.repetition} ${it.source} -> ${it.destination}`,
    ms: wholeMs(it.durationMs),
  };
  const flags = it.crossCheck ?? [];
  if (flags.length > 0)
    c.systemOut = [`cross-check: ${flags.length} contradiction${flags.length === 1 ? '' : 's'} between the network, hypervisor and guest views (not a failure):`, ...flags.map((f) => `- ${f}`)].join('\n');
  if (!it.ok && it.expected?.met) {
    // Failed as its cell expects (a fault, a known hypervisor defect): a pass that says how it ended.
    const how = [`expected: ${it.expected.outcome}, met`, `error: ${it.error ?? 'migration failed'}`, ...(it.guestOn ? [`guest on ${it.guestOn.node} (${it.guestOn.status})`] : []), ...it.notes.map((n) => `note: ${n}`)];
    c.systemOut = [...(c.systemOut ? [c.systemOut] : []), ...how].join('\n');
  } else if (!it.ok) {
    const error = it.error ?? 'migration failed';
    const message = it.notes.length > 0 ? `${error} (notes: ${it.notes.join('; ')})` : error;
    const body = [
      `error: ${error}`,
      ...(it.guestOn ? [`guest on ${it.guestOn.node} (${it.guestOn.status})`] : []),
      ...it.notes.map((n) => `note: ${n}`),
    ];
    c.failure = { message, type: 'MigrationFailed', body: body.join('\n') };
  }
  return c;
}

function thresholdCase(scenario: string, t: ThresholdCheck): Case {
  // the check's name already says cell, metric, statistic and limit
  const c: Case = { classname: `migralab.${scenario}.thresholds.${classSegment(t.cell)}`, name: t.name, ms: 0 };
  if (!t.held) {
    const message = `${t.name}: observed ${num(t.observed)} vs limit ${t.limit}${t.reason ? ` (${t.reason})` : ''}`;
    const body = [`cell: ${t.cell}`, `strategy: ${t.strategy}`, `metric: ${t.metric}`, `statistic: ${t.statistic}`, `limit: ${t.limit}`, `observed: ${num(t.observed)}`, `reason: ${t.reason}`];
    c.failure = { message, type: 'ThresholdBroken', body: body.join('\n') };
  }
  return c;
}

export function toJUnit(results: Results, checks: ThresholdCheck[] = []): string {
  const scenario = results.scenario.name;
  const suites: Suite[] = [{ name: `migralab ${scenario}: migrations`, cases: results.iterations.map((it) => iterationCase(scenario, it)) }];
  if (checks.length > 0) suites.push({ name: `migralab ${scenario}: thresholds`, cases: checks.map((t) => thresholdCase(scenario, t)) });

  const env = results.environment;
  const props: [string, string][] = [
    ['accelerator', env.accelerator],
    ['acceleratorReason', env.acceleratorReason],
    ['qemuVersion', env.qemuVersion],
    ['kernel', env.kernel],
    ['cpuModel', env.cpuModel],
    ['cpus', String(env.cpus)],
    ['nfsServer', env.nfsServer],
    ['nfsClient', env.nfsClient],
    ['nfsClientReason', env.nfsClientReason],
    ['node', env.node],
    ['migralab', env.migralab],
    ['scenarioFile', results.scenario.file],
    ['interrupted', String(results.interrupted === true)],
  ];

  const count = (s: Suite) => ({ tests: s.cases.length, failures: s.cases.filter((c) => c.failure).length, ms: s.cases.reduce((a, c) => a + c.ms, 0) });
  const totals = suites.map(count);
  const sum = (k: 'tests' | 'failures' | 'ms') => totals.reduce((a, t) => a + t[k], 0);

  const out: string[] = ['<?xml version="1.0" encoding="UTF-8"?>'];
  out.push(`<testsuites${attrs({ name: `migralab ${scenario}`, tests: sum('tests'), failures: sum('failures'), errors: 0, skipped: 0, time: seconds(sum('ms')), timestamp: results.startedAt })}>`);
  suites.forEach((s, i) => {
    const t = totals[i]!;
    out.push(`  <testsuite${attrs({ name: s.name, id: i, tests: t.tests, failures: t.failures, errors: 0, skipped: 0, time: seconds(t.ms), timestamp: results.startedAt })}>`);
    out.push('    <properties>');
    for (const [name, value] of props) out.push(`      <property${attrs({ name, value })}/>`);
    out.push('    </properties>');
    for (const c of s.cases) {
      const head = `    <testcase${attrs({ classname: c.classname, name: c.name, time: seconds(c.ms) })}`;
      if (!c.failure && c.systemOut === undefined) {
        out.push(`${head}/>`);
        continue;
      }
      out.push(`${head}>`);
      // the schema's order: failure before system-out
      if (c.failure) out.push(`      <failure${attrs({ message: c.failure.message, type: c.failure.type })}>${xmlText(c.failure.body)}</failure>`);
      if (c.systemOut !== undefined) out.push(`      <system-out>${xmlText(c.systemOut)}</system-out>`);
      out.push('    </testcase>');
    }
    out.push('  </testsuite>');
  });
  out.push('</testsuites>');
  return out.join('\n') + '\n';
}

/** junit.xml next to results.json: the iterations, and the threshold checks given. */
export const junitReporter = fileReporter('junit', 'junit.xml', (results, checks) => toJUnit(results, checks));
