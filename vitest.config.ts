import { createRequire } from "node:module";
import { defineConfig } from "vitest/config";

const require = createRequire(import.meta.url);

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
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
