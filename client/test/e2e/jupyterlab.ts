/**
 * End-to-end test in JupyterLab through jupyterlab-lsp: JupyterLab 4.6.6, jupyter-lsp 2.3.1
 * and jupyterlab-lsp 5.3.0 (installed by scripts/install.sh in a venv of their own), with
 * paramlens declared by the `jupyter_server_config.json` that docs/editors.md shows (read from
 * there, so the docs' configuration is what is tested) in the user's Jupyter config folder
 * (`~/.jupyter`, here a fresh one named by JUPYTER_CONFIG_DIR), driven by playwright-core
 * with Debian's chromium. No kernel is needed; JupyterLab starts one of its own accord.
 *
 * Opens a copy of fixtures/notebooks/mnist.ipynb in JupyterLab's notebook editor and hovers
 * (Ctrl held, jupyterlab-lsp's default) over `fc1` in the cell that declares it: paramlens's
 * hover says `Linear(784 -> 128): 100,480 parameters`. Then makes the cell's fc2 take 64
 * features where fc1 gives 128 (typed into the cell, analysed as the user types): paramlens's
 * forward-failed diagnostic is shown in that cell, on `return self.fc2(x)`, with its message.
 * Saves test-results/jupyterlab-screenshot.png
 * on success and test-results/jupyterlab-failure.png plus JupyterLab's log on failure.
 *
 * Usage: node out/test/e2e/jupyterlab.js
 * Env:   PARAMLENS_E2E_HOME    where install.sh put JupyterLab (default /opt/paramlens-e2e)
 *        PARAMLENS_E2E_PYTHON  the Python with paramlens and torch (default: python3's)
 *        PARAMLENS_CHROMIUM    browser executable (default /usr/bin/chromium)
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { type BrowserContext, type Locator, type Page } from "playwright-core";
import { freePort, httpOk, killProcessGroup, launchChromium, reporter, runToEnd } from "./harness";

const clientDir = path.resolve(__dirname, "..", "..", "..");
const repoDir = path.resolve(clientDir, "..");
const e2eHome = process.env.PARAMLENS_E2E_HOME ?? "/opt/paramlens-e2e";
const chromiumPath = process.env.PARAMLENS_CHROMIUM ?? "/usr/bin/chromium";
const resultsDir = path.join(clientDir, "test-results");
const NOTEBOOK = "mnist.ipynb";
const FC1_LINE = "self.fc1 = nn.Linear(28 * 28, config.hidden)";
const FC2_LINE = "self.fc2 = nn.Linear(config.hidden, config.classes)";

const TOTAL_TIMEOUT_MS = 4 * 60_000;
const FIGURES_TIMEOUT_MS = 120_000; // the server's start, torch's first import, the build
const UI_TIMEOUT_MS = 30_000;

const report = reporter("jupyterlab");
const { log, step } = report;

let lab: ChildProcess | undefined;
let context: BrowserContext | undefined;
let tmpRoot = "";
let labLog = "";

function jupyter(): string {
  const pointer = path.join(e2eHome, "jupyterlab-bin");
  const bin = fs.existsSync(pointer) ? fs.readFileSync(pointer, "utf8").trim() : "";
  if (!bin || !fs.existsSync(path.join(bin, "jupyter"))) {
    throw new Error(`JupyterLab not installed in ${e2eHome}: run client/scripts/install.sh first`);
  }
  return path.join(bin, "jupyter");
}

/** The jupyter_server_config.json that docs/editors.md gives for JupyterLab. */
function documentedConfig(): string {
  const docs = fs.readFileSync(path.join(repoDir, "docs", "editors.md"), "utf8");
  const section = docs.slice(docs.indexOf("**JupyterLab**"));
  const block = /```json\n([\s\S]*?)```/.exec(section);
  if (!block) throw new Error("docs/editors.md has no JSON configuration for JupyterLab");
  const config = JSON.parse(block[1]);
  if (JSON.stringify(config.LanguageServerManager.language_servers.paramlens.argv) !== '["paramlens","lsp"]') {
    throw new Error("the documented argv is not [\"paramlens\", \"lsp\"]");
  }
  return block[1];
}

function pythonForServer(): string {
  if (process.env.PARAMLENS_E2E_PYTHON) return process.env.PARAMLENS_E2E_PYTHON;
  return execFileSync("python3", ["-c", "import sys; print(sys.executable)"], { encoding: "utf8", timeout: 30_000 }).trim();
}

/** Moves the mouse onto `word` in `line` with Ctrl held (jupyterlab-lsp's hover key). */
async function hoverWord(page: Page, line: Locator, word: string): Promise<void> {
  // the word's box from the DOM: CodeMirror splits a line into token spans
  const box = await line.evaluate((el: any, w: string) => {
    const doc = (globalThis as any).document;
    const walker = doc.createTreeWalker(el, 4 /* NodeFilter.SHOW_TEXT */);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const at = node.data.indexOf(w);
      if (at < 0) continue;
      const range = doc.createRange();
      range.setStart(node, at);
      range.setEnd(node, at + w.length);
      const r = range.getBoundingClientRect();
      return { x: r.x + r.width / 2, y: r.y + r.height / 2 };
    }
    return null;
  }, word);
  if (!box) throw new Error(`"${word}" not found in the line`);
  await page.keyboard.up("Control");
  await page.mouse.move(box.x, box.y); // onto the word first: the hover is asked for there only
  await page.keyboard.down("Control");
  await page.mouse.move(box.x + 1, box.y);
}

async function main(): Promise<void> {
  const jupyterBin = jupyter();
  const config = documentedConfig();
  if (!fs.existsSync(chromiumPath)) throw new Error(`${chromiumPath} not found: run client/scripts/install.sh`);
  tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "paramlens-jupyterlab-"));
  const folder = path.join(tmpRoot, "notebooks");
  const home = path.join(tmpRoot, "jupyter");
  fs.mkdirSync(folder);
  fs.mkdirSync(path.join(home, "config"), { recursive: true });
  for (const name of [NOTEBOOK, "pyproject.toml"]) {
    fs.copyFileSync(path.join(repoDir, "fixtures", "notebooks", name), path.join(folder, name));
  }
  fs.writeFileSync(path.join(home, "config", "jupyter_server_config.json"), config);
  labLog = path.join(tmpRoot, "jupyterlab.log");
  const python = pythonForServer();
  log(`paramlens from ${python}; notebook folder ${folder}`);

  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  await step(`start JupyterLab on ${url}`, async () => {
    const out = fs.openSync(labLog, "a");
    lab = spawn(
      jupyterBin,
      ["lab", "--allow-root", "--no-browser", "--ip=127.0.0.1", `--port=${port}`, "--IdentityProvider.token=",
        "--ServerApp.password=", `--ServerApp.root_dir=${folder}`],
      {
        cwd: folder,
        detached: true,
        stdio: ["ignore", out, out],
        env: {
          ...process.env,
          // `paramlens` on PATH, as the documented argv expects
          PATH: `${path.dirname(python)}${path.delimiter}${process.env.PATH ?? ""}`,
          // the documented file where the docs put it (~/.jupyter); nothing of the user's
          JUPYTER_CONFIG_DIR: path.join(home, "config"),
          JUPYTER_DATA_DIR: path.join(home, "data"),
          JUPYTER_RUNTIME_DIR: path.join(home, "runtime"),
          JUPYTERLAB_SETTINGS_DIR: path.join(home, "settings"),
          JUPYTERLAB_WORKSPACES_DIR: path.join(home, "workspaces"),
          PARAMLENS_CACHE_DIR: path.join(tmpRoot, "cache"),
          OMP_NUM_THREADS: "1",
        },
      },
    );
    const deadline = Date.now() + 60_000;
    while (!(await httpOk(`${url}/lsp/status`))) {
      if (lab.exitCode !== null) throw new Error(`JupyterLab exited with code ${lab.exitCode}`);
      if (Date.now() > deadline) throw new Error("JupyterLab did not answer within 60 s");
      await new Promise((r) => setTimeout(r, 250));
    }
  });

  const page = await step(`open ${NOTEBOOK} in the notebook editor`, async () => {
    context = await launchChromium(chromiumPath, path.join(tmpRoot, "chromium"));
    context.setDefaultTimeout(UI_TIMEOUT_MS);
    const p = context.pages()[0] ?? (await context.newPage());
    await p.goto(`${url}/lab/tree/${NOTEBOOK}`, { timeout: 60_000 });
    await p.locator(".jp-Notebook .cm-line", { hasText: FC1_LINE }).first().waitFor({ state: "visible", timeout: 60_000 });
    return p;
  });

  await step("hover (Ctrl) on fc1 in its cell: Linear(784 -> 128), 100,480 parameters", async () => {
    const line = page.locator(".jp-Notebook .cm-line", { hasText: FC1_LINE }).first();
    const hover = page.locator(".lsp-hover", { hasText: "fc1.weight" }).first();
    const deadline = Date.now() + FIGURES_TIMEOUT_MS;
    for (;;) {
      await hoverWord(page, line, "fc1");
      try {
        await hover.waitFor({ state: "visible", timeout: 3000 });
        break;
      } catch (e) {
        if (Date.now() > deadline) {
          const shown = await page.locator(".lsp-hover").allInnerTexts();
          throw new Error(`no hover for fc1; hovers shown: ${JSON.stringify(shown)}; ${String(e)}`);
        }
        await page.keyboard.up("Control");
        await page.mouse.move(5, 5); // off the cell: the next try asks again
      }
    }
    const text = await hover.innerText();
    log(`hover: ${JSON.stringify(text.slice(0, 200))}`);
    if (!text.includes("Linear(784 -> 128): 100,480 parameters")) throw new Error(`unexpected hover: ${text}`);
    await page.keyboard.up("Control");
    await page.mouse.move(5, 5);
  });

  await step("fc2 made to take 64 features: the forward-failed diagnostic in the cell", async () => {
    const line = page.locator(".jp-Notebook .cm-line", { hasText: FC2_LINE }).first();
    await line.click();
    await page.keyboard.press("End");
    for (let i = 0; i < ", config.classes)".length; i++) await page.keyboard.press("ArrowLeft");
    for (let i = 0; i < "config.hidden".length; i++) await page.keyboard.press("Backspace");
    await page.keyboard.type("64");
    await page.locator(".jp-Notebook .cm-line", { hasText: "self.fc2 = nn.Linear(64, config.classes)" }).first()
      .waitFor({ state: "visible" });
    // jupyterlab-lsp underlines the range and names the diagnostic in its title
    const mark = page.locator(".cm-lintRange-warning, .cm-lintRange-error");
    const marked = page.locator(".jp-Notebook .cm-line", { has: mark }).first();
    await marked.waitFor({ state: "visible", timeout: FIGURES_TIMEOUT_MS });
    const text = await marked.innerText();
    log(`diagnostic on: ${JSON.stringify(text)}`);
    if (!text.includes("return self.fc2(x)")) throw new Error(`diagnostic on an unexpected line: ${text}`);
    const box = await marked.locator(".cm-lintRange-warning, .cm-lintRange-error").first().boundingBox();
    if (!box) throw new Error("the underlined range has no box");
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2, { steps: 3 });
    const tooltip = page.locator(".cm-tooltip-lint", { hasText: "in_features should be 128" }).first();
    await tooltip.waitFor({ state: "visible" });
    log(`its message: ${JSON.stringify((await tooltip.innerText()).slice(0, 200))}`);
  });

  await step("save a screenshot", async () => {
    fs.mkdirSync(resultsDir, { recursive: true });
    await page.screenshot({ path: path.join(resultsDir, "jupyterlab-screenshot.png") });
  });
}

async function cleanup(failed: boolean): Promise<void> {
  try {
    const page = context?.pages()[0];
    if (failed && page) {
      fs.mkdirSync(resultsDir, { recursive: true });
      await page.screenshot({ path: path.join(resultsDir, "jupyterlab-failure.png"), timeout: 10_000 });
    }
  } catch (e) {
    console.error(`could not take a failure screenshot: ${String(e)}`);
  }
  if (failed && labLog && fs.existsSync(labLog)) {
    const text = fs.readFileSync(labLog, "utf8");
    console.log(`----- JupyterLab output (last 60 lines) -----\n${text.split("\n").slice(-60).join("\n")}`);
  }
  try {
    await context?.close();
  } catch {
    /* the browser may already be gone */
  }
  killProcessGroup(lab); // JupyterLab, its kernel, paramlens and its worker
  if (tmpRoot && !failed && !process.env.PARAMLENS_E2E_KEEP) fs.rmSync(tmpRoot, { recursive: true, force: true });
  else if (tmpRoot) console.error(`files and logs kept in ${tmpRoot}`);
}

runToEnd(report, TOTAL_TIMEOUT_MS, main, cleanup);
