import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "drizzle/", "scratch/", ".data/", "coverage/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-explicit-any": "off",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", destructuredArrayIgnorePattern: "^_" }],
      // Configuration is parsed once in src/config.ts; nothing else reads the environment.
      "no-restricted-properties": ["error", { object: "process", property: "env", message: "Read configuration from the parsed Config (src/config.ts)." }],
    },
  },
  {
    files: ["scripts/**/*.mjs"],
    languageOptions: { globals: { URL: "readonly", console: "readonly", process: "readonly" } },
  },
  {
    files: ["src/config.ts", "test/**", "bench/**", "vitest.config.ts", "drizzle.config.ts"],
    rules: { "no-restricted-properties": "off" },
  },
);
