import type { Database } from "../db/index.js";
import type { Actor, Viewer } from "../domain/viewer.js";
import type { Config } from "../config.js";
import type { LiveAlertSource } from "../domain/alerts/live.js";
import { Access } from "./access.js";

export interface Context {
  db: Database;
  config: Config;
  viewer: Viewer | null;
  access: Access;
  actor: Actor;
  requestId: string;
  /** The live alert stream for subscriptions; null where this process does not serve it. */
  live: LiveAlertSource | null;
}

export function createContext(db: Database, config: Config, viewer: Viewer | null, requestId: string, live: LiveAlertSource | null = null): Context {
  return { db, config, viewer, access: new Access(db, viewer), actor: { viewer, requestId }, requestId, live };
}
