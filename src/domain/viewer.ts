import type { Role } from "./types.js";

/** The authenticated caller, resolved once per request from the bearer token. */
export interface Viewer {
  userId: string;
  tokenId: string;
  role: Role;
  organizationId: string | null;
  /** For planners: the root of their jurisdiction; `path` prefixes every region inside it. */
  jurisdiction: { id: number; code: string; path: string } | null;
}

/** Who a write is attributed to in the audit log. `null` viewer = the CLI or a job. */
export interface Actor {
  viewer: Viewer | null;
  requestId?: string | undefined;
  /** For writes from the command line or jobs, a short label such as `cli`. */
  system?: string;
}

export const systemActor = (system: string): Actor => ({ viewer: null, system });
