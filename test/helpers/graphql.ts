import type { Database } from "../../src/db/index.js";
import { loadConfig } from "../../src/config.js";
import { createGraphQLHandler } from "../../src/http/server.js";
import { createLogger } from "../../src/logger.js";

export interface GraphQLResponse<T = any> {
  status: number;
  data?: T;
  errors?: { message: string; path?: (string | number)[]; extensions?: Record<string, unknown> }[];
}

/** Runs operations through the real Yoga handler (auth header, masking, scopes), without a socket. */
export function graphqlClient(db: Database) {
  const config = loadConfig({ NODE_ENV: "test", LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent" });
  const yoga = createGraphQLHandler({ config, db, logger: createLogger(config) });
  return async function gql<T = any>(token: string | null, query: string, variables?: Record<string, unknown>): Promise<GraphQLResponse<T>> {
    const response = await yoga.fetch("http://test/graphql", {
      method: "POST",
      headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify({ query, variables }),
    });
    return { status: response.status, ...((await response.json()) as object) };
  };
}
