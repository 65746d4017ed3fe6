import { defineConfig } from 'vitest/config';

// CI (.ci/run) names a file here to get a JSON report beside the usual output, and fails the
// run when that report holds any test that did not pass (a skipped one included).
const jsonReport = process.env['OFFRAMP_TEST_REPORT'];

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // onnxruntime and tfjs work is CPU-bound on a 2-core machine: keep files in forks, few at a time.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 300_000,
    ...(jsonReport ? { reporters: ['default', ['json', { outputFile: jsonReport }]] } : {}),
  },
});
