import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import { createServer } from "node:net";
import path from "node:path";
import { Redis } from "ioredis";
import type { Config } from "./config.js";
import type { Logger } from "./logger.js";

export interface RedisHandle {
  url: string;
  /** Set when this process started its own redis-server. */
  child?: ChildProcess;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export class RedisUnavailableError extends Error {}

const INSTALL_HINT =
  "Background jobs need Redis 7. Either set REDIS_URL (e.g. redis://127.0.0.1:6379), or install the redis-server binary " +
  "(Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis) so `npm start` can run its own, " +
  "or point REDIS_SERVER_BIN at it.";

/** A free TCP port on loopback, for processes started by this one. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

/**
 * REDIS_URL when given; otherwise a private redis-server on a free loopback port, with its
 * append-only file under DATA_DIR so queued jobs survive a restart of the service.
 */
export async function openRedis(config: Config, logger: Logger): Promise<RedisHandle> {
  let url = config.REDIS_URL;
  let child: ChildProcess | undefined;
  if (!url) {
    const dir = path.resolve(config.DATA_DIR, "redis");
    mkdirSync(dir, { recursive: true });
    const port = await freePort();
    child = spawn(
      config.REDIS_SERVER_BIN,
      ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--appendonly", "yes", "--save", "", "--maxmemory-policy", "noeviction"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    await new Promise<void>((resolve, reject) => {
      let output = "";
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes("Ready to accept connections")) resolve();
      };
      child!.stdout!.on("data", onData);
      child!.stderr!.on("data", onData);
      child!.once("error", (error: NodeJS.ErrnoException) =>
        reject(new RedisUnavailableError(error.code === "ENOENT" ? `${config.REDIS_SERVER_BIN} was not found. ${INSTALL_HINT}` : `${error.message}. ${INSTALL_HINT}`)),
      );
      child!.once("exit", (code) => reject(new RedisUnavailableError(`redis-server exited with code ${code}: ${output.slice(-500)}`)));
    });
    child.stdout!.resume();
    child.stderr!.resume();
    url = `redis://127.0.0.1:${port}`;
    logger.info({ port, dir }, "started a private redis-server (set REDIS_URL to use a shared one)");
  }
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false });
  probe.on("error", () => {});
  try {
    await probe.connect();
  } catch (error) {
    child?.kill("SIGTERM");
    throw new RedisUnavailableError(`cannot reach Redis at ${url.replace(/\/\/[^@]*@/, "//***@")}: ${(error as Error).message}. ${INSTALL_HINT}`);
  }
  return {
    url,
    child,
    async ping() {
      await probe.ping();
    },
    async close() {
      probe.disconnect();
      if (child && child.exitCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        await exited;
      }
    },
  };
}
