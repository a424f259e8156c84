/**
 * What the end-to-end tests share (run.ts drives code-server, jupyterlab.ts JupyterLab):
 * a free port, an HTTP probe, ending a server's process group, and chromium started
 * headless with a fresh profile.
 */
import { execFileSync, type ChildProcess } from "node:child_process";
import * as http from "node:http";
import * as net from "node:net";
import { chromium, type BrowserContext } from "playwright-core";

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export function httpOk(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: 2000 }, (res) => {
      res.resume();
      resolve((res.statusCode ?? 500) < 400);
    });
    req.on("error", () => resolve(false));
    req.on("timeout", () => {
      req.destroy();
      resolve(false);
    });
  });
}

/** Ends a server started with `detached: true` and everything it started (its process group). */
export function killProcessGroup(child: ChildProcess | undefined): void {
  if (!child?.pid) return;
  for (const signal of ["SIGTERM", "SIGKILL"] as const) {
    try {
      process.kill(-child.pid, signal);
    } catch {
      return; // already gone
    }
    if (signal === "SIGTERM") {
      const until = Date.now() + 3000;
      while (Date.now() < until) {
        try {
          process.kill(-child.pid, 0);
        } catch {
          return;
        }
        execFileSync("sleep", ["0.1"]);
      }
    }
  }
}

/** Debian's chromium, headless, in a fresh profile at `profileDir`. */
export function launchChromium(executablePath: string, profileDir: string): Promise<BrowserContext> {
  return chromium.launchPersistentContext(profileDir, {
    executablePath,
    headless: true,
    viewport: { width: 1440, height: 900 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    timeout: 60_000,
  });
}

/** A test's log lines (`[prefix 12.3s] ...`, seconds since it started) and its named steps. */
export interface Reporter {
  prefix: string;
  elapsed(): string;
  log(msg: string): void;
  step<T>(name: string, fn: () => Promise<T>): Promise<T>;
}

export function reporter(prefix: string): Reporter {
  const started = Date.now();
  const elapsed = (): string => `${((Date.now() - started) / 1000).toFixed(1)}s`;
  const log = (msg: string): void => console.log(`[${prefix} ${elapsed()}] ${msg}`);
  async function step<T>(name: string, fn: () => Promise<T>): Promise<T> {
    log(`${name}…`);
    try {
      const value = await fn();
      log(`${name}: ok`);
      return value;
    } catch (e) {
      throw new Error(`step "${name}" failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return { prefix, elapsed, log, step };
}

/**
 * Runs a test's `main` to its end: `cleanup(failed)` after it, or after `timeoutMs` whatever
 * it is doing, then exits with its result in the line CI reads ("1 passed, 0 failed").
 */
export function runToEnd(
  report: Reporter,
  timeoutMs: number,
  main: () => Promise<void>,
  cleanup: (failed: boolean) => Promise<void>,
): void {
  const fail = (message: string): void => console.error(`[${report.prefix} ${report.elapsed()}] FAILED: ${message}`);
  const watchdog = setTimeout(() => {
    fail(`the whole run took longer than ${timeoutMs / 1000}s`);
    void cleanup(true).finally(() => process.exit(1));
  }, timeoutMs);
  main().then(
    async () => {
      clearTimeout(watchdog);
      await cleanup(false);
      report.log("PASSED");
      console.log("1 passed, 0 failed");
      process.exit(0);
    },
    async (e: unknown) => {
      clearTimeout(watchdog);
      fail(e instanceof Error ? e.message : String(e));
      await cleanup(true);
      console.log("0 passed, 1 failed");
      process.exit(1);
    },
  );
}
