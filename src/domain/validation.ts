import type { z } from "zod";
import { badInput, findCause } from "./errors.js";

/** Parses with zod and turns every issue into one readable sentence: `field: problem`. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const problems = result.error.issues.map((i) => (i.path.length ? `${i.path.join(".")}: ${i.message}` : i.message));
  throw badInput(problems.join("; "), { issues: result.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })) });
}

/** Postgres unique violations arrive wrapped by drizzle; look through the cause chain. */
export function isUniqueViolation(error: unknown, constraint?: string): boolean {
  return !!findCause(error, (e) => e.code === "23505" && (!constraint || e.constraint_name === constraint || e.constraint === constraint));
}
