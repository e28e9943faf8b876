import { defineConfig } from "vitest/config";
import base from "./vitest.config.js";

// `npm run test:faults`: the fault tests start the service's own processes and break things
// around them; they run apart from the main suite, one file at a time, each in a fresh worker.
export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include: ["test/faults/*.test.ts"],
    testTimeout: 180_000,
    fileParallelism: false,
    isolate: true,
  },
});
