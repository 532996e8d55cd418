import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { pathToFileURL } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { distributionMetrics } from '../../lab/results/reporters/html/view.ts';
import { writeReport } from '../../lab/results/reporters/html/page.ts';
import { metricOf, metrics, valuesOf } from '../../lab/results/metrics.ts';
import { groups } from '../../lab/results/cells.ts';
import { stats } from '../../lab/measure/stats.ts';
import { resultsSchema, type Results } from '../../lab/results/schema.ts';

const fixture = 'test/fixtures/results/small.results.json';
/** A matrix run: 2 link rates x block/shared, with phases, QMP samples, link, guest and harness views. */
const matrixFixture = 'test/fixtures/results/matrix.results.json';
/** The same scenario run before iterations kept their ping replies: no timelines. */
const olderFixture = 'test/fixtures/results/small-no-timeline.results.json';
const chromiumPath = '/usr/bin/chromium';
const screenshot = resolve('test-artifacts/report.png');
const matrixScreenshot = resolve('test-artifacts/report-matrix.png');
const browserArgs = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/*
 * The page functions below run in the browser; the project compiles without the DOM
 * library, so they see the page through these few shapes.
 */
interface PageElement {
  id: string;
  dataset: Record<string, string | undefined>;
  textContent: string | null;
}
interface PageCanvas extends PageElement {
  width: number;
  height: number;
  getContext(kind: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: ArrayLike<number> } } | null;
}
interface PageChart {
  data: { datasets: { migralab?: string; label?: string; data: { y: number | null }[] }[] };
  getDatasetMeta(k: number): { data: unknown[]; hidden: boolean | null };
  isDatasetVisible(k: number): boolean;
}
type PageGlobal = { Chart: { getChart(c: PageCanvas): PageChart } };

/** What the page says about one canvas: its size and how many of its pixels are ink, and how many are coloured (data, not axes or text). */
interface CanvasInk {
  id: string;
  kind: string;
  width: number;
  height: number;
  inked: number;
  coloured: number;
}

/** Every canvas of the page with its ink. */
function canvasInk(page: Page): Promise<CanvasInk[]> {
  return page.$$eval('canvas', (els) =>
    (els as unknown as PageCanvas[]).map((c) => {
      const px = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
      let inked = 0;
      let coloured = 0;
      for (let k = 0; k < px.length; k += 4) {
        const [r, g, b, a] = [px[k]!, px[k + 1]!, px[k + 2]!, px[k + 3]!];
        if (a < 64) continue;
        inked++;
        if (Math.max(r, g, b) - Math.min(r, g, b) > 80) coloured++;
      }
      return { id: c.id, kind: c.dataset.kind ?? '', width: c.width, height: c.height, inked, coloured };
    }),
  );
}

/** A report opened by openReport, and what its page did while loading and since. */
interface OpenedReport {
  context: BrowserContext;
  page: Page;
  /** Every URL the page requested. */
  requests: string[];
  /** Console messages of type error, and uncaught page errors, kept apart. */
  errors: { console: string[]; page: string[] };
}

/**
 * Opens htmlFile from a file:// URL in Debian's chromium (with its profile in profileDir)
 * and waits until the page says its charts are drawn, recording the page's requests,
 * console errors and page errors from the start. Closes the browser if that fails.
 */
async function openReport(htmlFile: string, profileDir: string): Promise<OpenedReport> {
  const context = await chromium.launchPersistentContext(profileDir, {
    executablePath: chromiumPath,
    headless: true,
    args: browserArgs,
    viewport: { width: 1400, height: 1000 },
    deviceScaleFactor: 1,
  });
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    const requests: string[] = [];
    const errors: OpenedReport['errors'] = { console: [], page: [] };
    page.on('request', (r) => requests.push(r.url()));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.console.push(m.text());
    });
    page.on('pageerror', (e) => errors.page.push(String(e)));
    await page.goto(pathToFileURL(htmlFile).href, { waitUntil: 'load' });
    await page.waitForSelector('body[data-charts="ready"]', { timeout: 15_000 });
    return { context, page, requests, errors };
  } catch (e) {
    await context.close();
    throw e;
  }
}

/** Closes the browser of report (if it was opened), then removes the temporary directory tmp. */
async function closeReport(report: OpenedReport | undefined, tmp: string): Promise<void> {
  try {
    await report?.context.close();
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** The fixture report, opened from a file:// URL in Debian's chromium with no network to reach. */
describe('HTML report in a real browser', () => {
  let tmp: string;
  let results: Results;
  let htmlFile: string;
  let report: OpenedReport | undefined;
  let page: Page;

  beforeAll(async () => {
    expect(existsSync(chromiumPath), `${chromiumPath} (Debian's chromium package) is needed`).toBe(true);
    tmp = mkdtempSync(join(tmpdir(), 'mlhtml-'));
    const runDir = join(tmp, 'run');
    mkdirSync(runDir);
    copyFileSync(fixture, join(runDir, 'results.json'));
    results = resultsSchema.parse(JSON.parse(readFileSync(fixture, 'utf8')));
    htmlFile = await writeReport([runDir], join(tmp, 'out', 'report.html'));
    report = await openReport(htmlFile, join(tmp, 'profile'));
    page = report.page;
  }, 60_000);

  afterAll(() => closeReport(report, tmp));

  it('loads with no console error, no page error, and no request but the file itself', () => {
    expect(report!.errors.page).toEqual([]);
    expect(report!.errors.console).toEqual([]);
    expect(report!.requests).toEqual([pathToFileURL(htmlFile).href]);
  });

  it('draws ink, and coloured data, on every chart canvas', async () => {
    const canvases = await canvasInk(page);
    const withTimeline = results.iterations.filter((i) => i.timeline).length;
    expect(canvases).toHaveLength(distributionMetrics.length + withTimeline);
    for (const c of canvases) {
      expect(c.width * c.height, c.id).toBeGreaterThan(100 * 100);
      expect(c.inked, `${c.id}: ink`).toBeGreaterThan(500);
      expect(c.coloured, `${c.id}: coloured data pixels`).toBeGreaterThan(c.kind === 'timeline' ? 300 : 100);
    }
  });

  it('plots one point per successful repetition on each distribution, and one timeline per iteration', async () => {
    const drawn: Record<string, { points: number; medians: (number | null)[] }> = await page.$$eval('canvas[data-kind="distribution"]', (els) => {
      const Chart = (globalThis as unknown as PageGlobal).Chart;
      return Object.fromEntries(
        (els as unknown as PageCanvas[]).map((c) => {
          const chart = Chart.getChart(c);
          let points = 0;
          const medians: (number | null)[] = [];
          chart.data.datasets.forEach((d, k) => {
            if (d.migralab === 'points') points += chart.getDatasetMeta(k).data.length;
            if (d.migralab === 'median') medians.push(d.data[0]!.y);
          });
          return [c.dataset.metric!, { points, medians }];
        }),
      );
    });
    for (const key of distributionMetrics) {
      const m = metricOf(key);
      const gs = groups(results);
      const expected = gs.flatMap((g) => g.ok).filter((i) => typeof m.get(i) === 'number').length;
      expect(drawn[key]!.points, key).toBe(expected);
      expect(drawn[key]!.medians, key).toEqual(gs.map((g) => stats(valuesOf(g.ok, m)).median));
    }
    expect(results.iterations.every((i) => i.ok)).toBe(true);
    expect(drawn.durationMs!.points).toBe(results.iterations.length);

    const timelines: { iteration: number; points: number }[] = await page.$$eval('canvas[data-kind="timeline"]', (els) => {
      const Chart = (globalThis as unknown as PageGlobal).Chart;
      return (els as unknown as PageCanvas[]).map((c) => ({ iteration: Number(c.dataset.iteration), points: Chart.getChart(c).getDatasetMeta(0).data.length }));
    });
    expect(timelines.map((t) => t.iteration)).toEqual(results.iterations.map((i) => i.index));
    for (const t of timelines) {
      const it = results.iterations[t.iteration]!;
      expect(t.points).toBe(it.timeline!.ping.filter(([, rtt]) => rtt !== null).length);
    }
  });

  it('shows, in the summary table, the statistics stats() computes from results.json', async () => {
    const cells: { metric: string; strategy: string; stat: string; value: string | null; text: string }[] = await page.$$eval('table.summary [data-stat]', (els) =>
      (els as unknown as PageElement[]).map((e) => ({ metric: e.dataset.metric!, strategy: e.dataset.strategy!, stat: e.dataset.stat!, value: e.dataset.value ?? null, text: e.textContent!.trim() })),
    );
    let checked = 0;
    for (const g of groups(results))
      for (const m of metrics) {
        const s = stats(valuesOf(g.ok, m));
        for (const stat of ['median', 'p95', 'min', 'max'] as const) {
          const cell = cells.find((c) => c.metric === m.key && c.strategy === g.strategy && c.stat === stat);
          expect(cell, `${g.strategy} ${m.key} ${stat}`).toBeDefined();
          expect(Number(cell!.value), `${g.strategy} ${m.key} ${stat}`).toBe(s[stat]);
          if (m.unit === 'ms') expect(cell!.text).toBe(s[stat]!.toFixed(1));
          checked++;
        }
      }
    expect(checked).toBe(2 * metrics.length * 4);
    // The difference of medians, with its interval, and the warning three repetitions deserve.
    const diff = cells.find((c) => c.metric === 'durationMs' && c.strategy === 'block-shared' && c.stat === 'diff')!;
    const medianOf = (strategy: string) => stats(valuesOf(groups(results).find((g) => g.strategy === strategy)!.ok, metricOf('durationMs'))).median!;
    expect(Number(diff.value)).toBeCloseTo(medianOf('block') - medianOf('shared'), 9);
    expect(await page.locator('table.summary .warn').count()).toBe(metrics.length);
  });

  it('shows the environment fingerprint and the scenario as run', async () => {
    expect(await page.locator('[data-env="qemuVersion"]').textContent()).toBe(results.environment.qemuVersion);
    expect(await page.locator('[data-env="accelerator"]').textContent()).toBe(results.environment.accelerator);
    expect(JSON.parse((await page.locator('pre.scenario').textContent())!)).toEqual(results.scenario.asRun);
  });

  it('gives two runs (one from before timelines were kept) a section each and a table of their medians', async () => {
    const other = resultsSchema.parse(JSON.parse(readFileSync(olderFixture, 'utf8')));
    const dirs = [join(tmp, 'run'), join(tmp, 'older')];
    mkdirSync(dirs[1]!);
    copyFileSync(olderFixture, join(dirs[1]!, 'results.json'));
    const file = await writeReport(dirs, join(tmp, 'out', 'two.html'));
    const p = await report!.context.newPage();
    const errors: string[] = [];
    const seen: string[] = [];
    p.on('request', (r) => seen.push(r.url()));
    p.on('console', (m) => void (m.type() === 'error' && errors.push(m.text())));
    p.on('pageerror', (e) => errors.push(String(e)));
    try {
      await p.goto(pathToFileURL(file).href, { waitUntil: 'load' });
      await p.waitForSelector('body[data-charts="ready"]', { timeout: 15_000 });
      expect(errors).toEqual([]);
      expect(seen).toEqual([pathToFileURL(file).href]);
      expect(await p.locator('section.run').count()).toBe(2);
      expect(await p.locator('canvas[data-kind="distribution"]').count()).toBe(2 * distributionMetrics.length);
      expect(await p.locator('canvas[data-kind="timeline"]').count()).toBe(results.iterations.length);
      expect(await p.locator('#run-1 figure.timeline.missing').count()).toBe(other.iterations.length);
      for (const [k, r] of [results, other].entries())
        for (const g of groups(r)) {
          const v = await p.locator(`.overview-table [data-run="run-${k}"][data-metric="durationMs"][data-strategy="${g.strategy}"]`).getAttribute('data-value');
          expect(Number(v)).toBe(stats(valuesOf(g.ok, metricOf('durationMs'))).median);
        }
    } finally {
      await p.close();
    }
  });

  it('saves a full-page screenshot', async () => {
    mkdirSync(resolve('test-artifacts'), { recursive: true });
    await page.screenshot({ path: screenshot, fullPage: true });
    expect(readFileSync(screenshot).subarray(1, 4).toString()).toBe('PNG');
  });
});

/** The report of a matrix run (two link rates x block/shared) in the same browser: per-cell tables, charts and the QMP samples. */
describe('matrix HTML report in a real browser', () => {
  let tmp: string;
  let results: Results;
  let htmlFile: string;
  let report: OpenedReport | undefined;
  let page: Page;
  const labels = ['block, link.rate=unlimited', 'shared, link.rate=unlimited', 'block, link.rate=200Mbit', 'shared, link.rate=200Mbit'];

  beforeAll(async () => {
    expect(existsSync(chromiumPath), `${chromiumPath} (Debian's chromium package) is needed`).toBe(true);
    tmp = mkdtempSync(join(tmpdir(), 'mlhtml-matrix-'));
    const runDir = join(tmp, 'run');
    mkdirSync(runDir);
    copyFileSync(matrixFixture, join(runDir, 'results.json'));
    results = resultsSchema.parse(JSON.parse(readFileSync(matrixFixture, 'utf8')));
    htmlFile = await writeReport([runDir], join(tmp, 'out', 'report.html'));
    report = await openReport(htmlFile, join(tmp, 'profile'));
    page = report.page;
  }, 60_000);

  afterAll(() => closeReport(report, tmp));

  it('loads with no console or page error and no request but the file itself', () => {
    expect([...report!.errors.console, ...report!.errors.page]).toEqual([]);
    expect(report!.requests).toEqual([pathToFileURL(htmlFile).href]);
  });

  it('draws ink, and coloured data, on every canvas: a distribution per metric, a timeline per iteration', async () => {
    const canvases = await canvasInk(page);
    expect(canvases.map((c) => c.kind)).toEqual([...distributionMetrics.map(() => 'distribution'), ...results.iterations.map(() => 'timeline')]);
    for (const c of canvases) {
      expect(c.width * c.height, c.id).toBeGreaterThan(100 * 100);
      expect(c.inked, `${c.id}: ink`).toBeGreaterThan(500);
      expect(c.coloured, `${c.id}: coloured data pixels`).toBeGreaterThan(c.kind === 'timeline' ? 300 : 100);
    }
  });

  it('shows per cell, in the summary table and on the distributions, the medians computed from that cell\'s iterations', async () => {
    const cells: { metric: string; cell: string; value: string | null; text: string }[] = await page.$$eval('table.summary [data-cell][data-stat="median"]', (els) =>
      (els as unknown as PageElement[]).map((e) => ({ metric: e.dataset.metric!, cell: e.dataset.cell!, value: e.dataset.value ?? null, text: e.textContent!.trim() })),
    );
    expect([...new Set(cells.map((c) => c.cell))]).toEqual(labels);
    for (const label of labels) {
      const ok = results.iterations.filter((i) => i.cell!.label === label && i.ok);
      for (const m of metrics) {
        const expected = stats(valuesOf(ok, m)).median!;
        const c = cells.filter((x) => x.cell === label && x.metric === m.key);
        expect(c, `${label} ${m.key}`).toHaveLength(1);
        expect(Number(c[0]!.value)).toBe(expected);
        if (m.unit === 'ms') expect(c[0]!.text).toBe(expected.toFixed(1));
      }
    }
    const drawn: Record<string, { points: number; medians: (number | null)[]; ticks: unknown[] }> = await page.$$eval('canvas[data-kind="distribution"]', (els) => {
      const Chart = (globalThis as unknown as PageGlobal).Chart;
      return Object.fromEntries(
        (els as unknown as PageCanvas[]).map((c) => {
          const chart = Chart.getChart(c) as PageChart & { scales: { x: { ticks: { label: unknown }[] } } };
          let points = 0;
          const medians: (number | null)[] = [];
          chart.data.datasets.forEach((d, k) => {
            if (d.migralab === 'points') points += chart.getDatasetMeta(k).data.length;
            if (d.migralab === 'median') medians.push(d.data[0]!.y);
          });
          return [c.dataset.metric!, { points, medians, ticks: chart.scales.x.ticks.map((t) => t.label) }];
        }),
      );
    });
    for (const key of distributionMetrics) {
      const m = metricOf(key);
      expect(drawn[key]!.points, key).toBe(results.iterations.length);
      expect(drawn[key]!.medians, key).toEqual(groups(results).map((g) => stats(valuesOf(g.ok, m)).median));
      expect(drawn[key]!.ticks, key).toEqual([
        ['block', 'unlimited'],
        ['shared', 'unlimited'],
        ['block', '200Mbit'],
        ['shared', '200Mbit'],
      ]);
    }
    // block − shared per group
    const diffs = await page.$$eval('table.summary tr.diff [data-metric="durationMs"][data-stat="diff"]', (els) => (els as unknown as PageElement[]).map((e) => [e.dataset.group, e.textContent]));
    expect(diffs).toEqual([
      ['link.rate=unlimited', '+370.0'],
      ['link.rate=200Mbit', '-1062.3'],
    ]);
  });

  it('draws on each timeline the ping replies, and RAM and disk remaining from the QMP samples on a second axis', async () => {
    const timelines: { iteration: number; series: { name: string; points: number; visible: boolean }[]; y2: boolean }[] = await page.$$eval('canvas[data-kind="timeline"]', (els) => {
      const Chart = (globalThis as unknown as PageGlobal).Chart;
      return (els as unknown as PageCanvas[]).map((c) => {
        const chart = Chart.getChart(c) as PageChart & { options: { scales: { y2: { display: boolean } } } };
        return {
          iteration: Number(c.dataset.iteration),
          series: chart.data.datasets.map((d, k) => ({ name: d.migralab ?? '', points: chart.getDatasetMeta(k).data.length, visible: chart.isDatasetVisible(k) })),
          y2: chart.options.scales.y2.display,
        };
      });
    });
    expect(timelines.map((t) => t.iteration)).toEqual(results.iterations.map((i) => i.index));
    for (const t of timelines) {
      const it = results.iterations[t.iteration]!;
      const samples = it.timeline!.samples!;
      const expected = [{ name: 'rtt', points: it.timeline!.ping.filter(([, rtt]) => rtt !== null).length, visible: true }, { name: 'ramRemaining', points: samples.length, visible: true }];
      // only block migration has a disk mirror to report
      if (it.strategy === 'block') expected.push({ name: 'diskRemaining', points: samples.length, visible: true });
      expect(t.series, it.cell!.label).toEqual(expected);
      expect(t.y2).toBe(true);
    }
  });

  it('lists the iterations with the new columns, on a page that fits the figures', async () => {
    const heads = await page.locator('table.iterations thead th').allTextContents();
    expect(heads).toEqual(expect.arrayContaining(['cell', 'pre-copy (ms)', 'RAM passes', 'switchover (ms)', 'resume (ms)', 'link efficiency', 'guest clock loss (ms)', 'harness CPU (ms)', 'cross-check']));
    expect(await page.locator('table.iterations td[data-field="link.efficiency"][data-iteration="3"]').textContent()).toBe('96.0%');
    expect(await page.locator('table.iterations tr.flagged').count()).toBe(0);
    mkdirSync(resolve('test-artifacts'), { recursive: true });
    await page.screenshot({ path: matrixScreenshot, fullPage: true });
    expect(readFileSync(matrixScreenshot).subarray(1, 4).toString()).toBe('PNG');
  });
});
