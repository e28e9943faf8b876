// Prints the schema to schema.graphql, or with --check fails when the checked-in file differs.
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { printSchema } from "graphql";
import { schema } from "./schema.js";

const file = fileURLToPath(new URL("../../schema.graphql", import.meta.url));
const printed = `${printSchema(schema)}\n`;

if (process.argv.includes("--check")) {
  let current = "";
  try {
    current = readFileSync(file, "utf8");
  } catch {
    // A missing file is a difference like any other.
  }
  if (current !== printed) {
    console.error("schema.graphql is out of date with the code. Review the change, then run: npm run schema:print");
    process.exit(1);
  }
  console.error("schema.graphql matches the code.");
} else {
  writeFileSync(file, printed);
  console.error(`wrote ${file}`);
}
