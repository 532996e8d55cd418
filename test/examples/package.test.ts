/**
 * The library from another project: `npm pack` of this one, installed into a scratch
 * project, `import { startLab } from 'migralab'` type-checked against the packed types (a
 * wrong option is a type error) and run: a guest booted, migrated, and the lab down again
 * once `await using` leaves its block.
 */
import { describe, it, expect } from 'vitest';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { execa } from 'execa';
import { leftovers } from '../e2e/helpers.ts';
import { loadTopology } from '../../lab/config/topology.ts';
import { planLab } from '../../lab/provision/plan.ts';

const root = resolve(import.meta.dirname, '../..');
const tsc = join(root, 'node_modules/.bin/tsc');
const TOPOLOGY = join(root, 'test/fixtures/test.lab.yaml');

const CONSUMER = `declare const process: { argv: string[] };
declare const console: { log(s: string): void };
import { startLab, MigralabError, type IterationResult } from 'migralab';
{
  await using lab = await startLab({ topology: process.argv[2] });
  const vm = await lab.boot({ strategy: 'shared' });
  const from = vm.node;
  const r: IterationResult = await lab.migrate(vm);
  console.log(JSON.stringify({ ok: r.ok, verified: r.verified, from, to: vm.node, lab: lab.name, typedError: new MigralabError('USAGE', 'x').code }));
}
console.log('disposed');
`;

describe('migralab as a package in another project', () => {
  it('installs from npm pack, its types resolve, and await using takes the lab down', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mlpkg-'));
    try {
      await execa('npm', ['pack', '--silent', '--pack-destination', dir], { cwd: root });
      const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'))!;
      const app = join(dir, 'app');
      await execa('mkdir', ['-p', app]);
      writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'scratch', private: true, type: 'module' }));
      writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, skipLibCheck: true, lib: ['ES2023', 'ESNext.Disposable'], types: [], outDir: 'out' }, include: ['consumer.ts'] }));
      writeFileSync(join(app, 'consumer.ts'), CONSUMER);
      await execa('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', join(dir, tarball)], { cwd: app });
      const built = await execa(tsc, ['-p', '.'], { cwd: app, reject: false, all: true });
      expect(built.exitCode, built.all).toBe(0);
      // the packed types are real: a wrong option does not compile
      writeFileSync(join(app, 'wrong.ts'), "import { startLab } from 'migralab';\nconst lab = await startLab({ topology: 'x' });\nawait lab.boot({ strategy: 'sideways' });\n");
      const wrong = await execa(tsc, ['--noEmit', '--target', 'ES2022', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--strict', '--skipLibCheck', 'wrong.ts'], { cwd: app, reject: false, all: true });
      expect(wrong.exitCode).not.toBe(0);
      expect(wrong.all).toMatch(/wrong\.ts\(3,18\): error TS2322: Type '"sideways"' is not assignable to type '"block" \| "shared" \| undefined'/);
      const run = await execa('node', ['out/consumer.js', TOPOLOGY], { cwd: app, reject: false, all: true });
      expect(run.exitCode, run.all).toBe(0);
      const [line, last] = run.stdout.trim().split('\n');
      const out = JSON.parse(line!) as { ok: boolean; verified: Record<string, boolean>; from: string; to: string; lab: string; typedError: string };
      expect(out).toMatchObject({ ok: true, lab: 'mltest', typedError: 'USAGE' });
      expect(Object.values(out.verified).every(Boolean)).toBe(true);
      expect(out.to).not.toBe(out.from);
      expect(last).toBe('disposed');
      expect(await leftovers(planLab(await loadTopology(TOPOLOGY)))).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 240_000);
});
