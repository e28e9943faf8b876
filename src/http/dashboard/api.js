/* global fetch, sessionStorage, location, URL */
// The page's only way to the service: the public GraphQL API, with the planner's bearer token.

const TOKEN_KEY = "supply-monitor.token";
// The page is served at <api>/dashboard/; the API answers next to it, wherever it is mounted.
const ENDPOINT = new URL("../graphql", location.href).toString();

/** An answer with errors: every message of the API, kept, so the page can show them all. */
export class ApiError extends Error {
  /**
   * @param {string} message
   * @param {{ unauthenticated?: boolean, errors?: { message: string, extensions?: { code?: string } }[] }} [info]
   */
  constructor(message, info = {}) {
    super(message);
    this.name = "ApiError";
    this.unauthenticated = info.unauthenticated ?? false;
    this.errors = info.errors ?? [];
  }
}

export const session = {
  get token() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
};

/**
 * Runs one operation. Resolves with `data` when the answer has no errors; otherwise rejects with an
 * ApiError carrying the API's own messages (they say what was wrong and what to do).
 * @param {string} query
 * @param {Record<string, unknown>} [variables]
 * @param {string} [token] the session's token unless given
 */
export async function graphql(query, variables = {}, token = session.token ?? "") {
  let response;
  try {
    response = await fetch(ENDPOINT, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/graphql-response+json, application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
      cache: "no-store",
      credentials: "omit",
    });
  } catch (error) {
    throw new ApiError(`could not reach the API at ${ENDPOINT} (${error instanceof Error ? error.message : String(error)}); check that the service is running and try again`);
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`the API at ${ENDPOINT} answered ${response.status} ${response.statusText} without a GraphQL answer; try again, and if it keeps failing tell the operators`);
  }
  const errors = Array.isArray(body?.errors) ? body.errors : [];
  if (errors.length) {
    const unauthenticated = response.status === 401 || errors.some((e) => e?.extensions?.code === "UNAUTHENTICATED");
    throw new ApiError(errors.map((e) => String(e?.message ?? "unknown error")).join("; "), { unauthenticated, errors });
  }
  if (!response.ok || !body?.data) {
    throw new ApiError(`the API answered ${response.status} ${response.statusText} without data; try again`);
  }
  return body.data;
}

/**
 * Every page of a connection, `first: 100` at a time (the API's cap), up to `limit` nodes.
 * `pick` finds the connection in an answer.
 * @template T
 * @param {string} query an operation with `$first: Int` and `$after: String`
 * @param {Record<string, unknown>} variables
 * @param {(data: any) => { edges: { node: T }[], pageInfo: { hasNextPage: boolean, endCursor: string | null } }} pick
 * @param {number} limit
 * @returns {Promise<{ nodes: T[], truncated: boolean }>}
 */
export async function allPages(query, variables, pick, limit) {
  const nodes = [];
  let after = null;
  for (;;) {
    const connection = pick(await graphql(query, { ...variables, first: 100, after }));
    for (const edge of connection.edges) nodes.push(edge.node);
    if (!connection.pageInfo.hasNextPage) return { nodes, truncated: false };
    if (nodes.length >= limit) return { nodes, truncated: true };
    after = connection.pageInfo.endCursor;
  }
}
