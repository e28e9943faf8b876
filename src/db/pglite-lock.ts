import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import path from "node:path";

/** The embedded database is open in another process; the message says what to do. */
export class DatabaseLockedError extends Error {
  override name = "DatabaseLockedError";
}

export interface PgliteLock {
  readonly path: string;
  release(): void;
}

/** Lock files held by this process, so a pid equal to ours can be told apart from a stale one. */
const held = new Set<string>();

/**
 * Takes `pglite.lock` next to the PGlite folder, holding this process's pid. PGlite has no
 * locking of its own and two processes writing one folder corrupt it.
 */
export function acquirePgliteLock(folder: string): PgliteLock {
  const lockPath = path.join(path.dirname(folder), "pglite.lock");
  if (held.has(lockPath)) {
    throw new DatabaseLockedError(`the embedded database in ${folder} is already open in this process; reuse that handle`);
  }
  let acquired = false;
  for (let attempt = 0; attempt < 10 && !acquired; attempt++) {
    acquired = tryCreate(lockPath);
    if (acquired) break;
    const content = readLock(lockPath);
    if (content === undefined) continue; // released between our open and read: try again
    const pid = Number.parseInt(content, 10);
    // Our own pid in a lock we do not hold is a previous incarnation (pid 1 after a container
    // restart). Unparsable content is a lock whose writer died before writing its pid.
    if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
      throw new DatabaseLockedError(
        `the embedded database in ${folder} is in use by process ${pid} (probably \`npm start\`); ` +
          `stop it first, or set DATABASE_URL to use a shared PostgreSQL. ` +
          `If process ${pid} is not this service, delete ${lockPath}.`,
      );
    }
    // Stale: remove it unless someone else replaced it meanwhile, then race for it with `wx` again.
    if (readLock(lockPath) === content) removeLock(lockPath);
  }
  if (!acquired) throw new DatabaseLockedError(`could not take the lock ${lockPath}: other processes keep taking it; try again`);

  held.add(lockPath);
  const onExit = () => release();
  process.once("exit", onExit);
  let released = false;
  function release() {
    if (released) return;
    released = true;
    process.removeListener("exit", onExit);
    held.delete(lockPath);
    if (readLock(lockPath)?.trim() === String(process.pid)) removeLock(lockPath);
  }
  return { path: lockPath, release };
}

function tryCreate(lockPath: string): boolean {
  let fd: number;
  try {
    fd = openSync(lockPath, "wx");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw error;
  }
  try {
    writeSync(fd, `${process.pid}\n`);
  } finally {
    closeSync(fd);
  }
  return true;
}

function readLock(lockPath: string): string | undefined {
  try {
    return readFileSync(lockPath, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

function removeLock(lockPath: string) {
  try {
    unlinkSync(lockPath);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
