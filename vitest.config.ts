import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import path from "node:path";
import { defineConfig } from "vitest/config";
import { BaseSequencer, type TestSpecification } from "vitest/node";

const require = createRequire(import.meta.url);

/**
 * Files that take longest for reasons that do not shrink (child processes, the worker's debounced
 * pipeline, PGlite): they start first, so no long file is left running alone at the end. CI starts
 * without vitest's timing cache (npm ci empties node_modules), where vitest would go by file size.
 */
const SLOW_FIRST = ["cli", "matching-getusppe", "access-scope", "hostile-input", "alerts-e2e", "audit", "alert-delivery", "forecast-pipeline", "ingest", "completeness", "demand"];

class SlowFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (spec: TestSpecification) => {
      const i = SLOW_FIRST.indexOf(path.basename(spec.moduleId).replace(/\.test\.ts$/, ""));
      return i < 0 ? SLOW_FIRST.length : i;
    };
    // Array.prototype.sort is stable: the rest keep vitest's own order (cached durations or size).
    return (await super.sort(files)).sort((a, b) => rank(a) - rank(b));
  }
}

export default defineConfig({
  resolve: {
    // Node loads graphql through its "main" (CommonJS) for every external package; vite would pick
    // its .mjs build for our files. Two copies of graphql cannot share a schema, so use Node's.
    alias: [{ find: /^graphql$/, replacement: require.resolve("graphql") }],
  },
  test: {
    // test/faults/ runs on its own: npm run test:faults (vitest.faults.config.ts).
    include: ["test/*.test.ts"],
    globalSetup: ["test/helpers/global-setup.ts"],
    pool: "forks",
    // Vitest's default is one worker less than the cores: one on this 2-core machine. Much of a
    // file's time is waiting (child processes, timers, the databases), so every core gets a file.
    maxWorkers: Math.max(2, availableParallelism()),
    // Test files share their worker's modules instead of importing the service again each (the
    // schema alone takes seconds of CPU per import). Files share no state through them: each opens
    // its own database, Redis prefix, servers and ports. Do not vi.mock modules in these files
    // (a mock would outlive its file); a file that needs one belongs in a project with isolate on.
    isolate: false,
    sequence: { sequencer: SlowFirstSequencer },
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
