import type { Database } from "../db/index.js";
import type { Actor, Viewer } from "../domain/viewer.js";
import type { Config } from "../config.js";
import { Access } from "./access.js";

export interface Context {
  db: Database;
  config: Config;
  viewer: Viewer | null;
  access: Access;
  actor: Actor;
  requestId: string;
}

export function createContext(db: Database, config: Config, viewer: Viewer | null, requestId: string): Context {
  return { db, config, viewer, access: new Access(db, viewer), actor: { viewer, requestId }, requestId };
}
