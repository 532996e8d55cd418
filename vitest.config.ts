import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The end-to-end files share one test lab (test/fixtures/test.lab.yaml) and a
    // 2-core machine: run files one after another, unit files first (alphabetical: e2e < unit
    // would put them last, so sequence by name is not relied upon for correctness).
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 300_000,
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
