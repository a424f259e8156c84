/**
 * End-to-end test in real VS Code: code-server 4.100.3 (installed by
 * scripts/install.sh) driven by playwright-core with Debian's chromium.
 *
 * Installs the .vsix into a fresh profile, opens a copy of the fixtures folder
 * (in a temp dir: the quick fix edits a file), with fixtures/shapes/lenet.py, a LeNet
 * whose fc1 does not fit what flows into it. Opens recipe/models.py and checks the
 * class lens, a layer lens (with its output shape), an inlay hint in forward(),
 * a hover and the Show Model Summary command; then opens lenet.py, waits for the
 * forward-failed warning, applies its quick fix with Ctrl+. and checks the text
 * changed and, after saving, the warning is gone; then opens
 * notebooks/inspecting_model_parameters.ipynb in the notebook editor (no kernel) and checks
 * a class lens, an inlay hint in forward() and a hover in its cells. LeNet's input comes from the
 * `paramlens.inputs` setting. Saves test-results/e2e-screenshot.png on success
 * (images/screenshot.png, the README's picture, only with --update-screenshot:
 * tests never touch tracked files) and test-results/e2e-failure.png (plus
 * code-server and extension logs) on failure.
 *
 * With --restricted it checks Workspace Trust instead: in a folder that is not
 * trusted the server does not start, the status bar and a message say why, and
 * granting trust starts it.
 *
 * Usage: node out/test/e2e/run.js [--no-package] [--activation-only] [--restricted] [--update-screenshot]
 * Env:   PARAMLENS_E2E_HOME    code-server cache dir (default /opt/paramlens-e2e)
 *        PARAMLENS_E2E_FOLDER  folder to copy and open (default <repo>/fixtures)
 *        PARAMLENS_E2E_PYTHON  Python for paramlens.python (default: python3's sys.executable)
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
const sourceFolder = path.resolve(process.env.PARAMLENS_E2E_FOLDER ?? path.join(repoDir, "fixtures"));
const modelFile = "recipe/models.py";
// A LeNet whose fc1 does not fit what flows into it (from the repo's fixtures, even when
// PARAMLENS_E2E_FOLDER names another folder).
const lenetFile = "shapes/lenet.py";
const LENET = fs.readFileSync(path.join(repoDir, "fixtures", lenetFile), "utf8");
const chromiumPath = process.env.PARAMLENS_CHROMIUM ?? "/usr/bin/chromium";
const resultsDir = path.join(clientDir, "test-results");
const vsixPath = path.join(clientDir, "paramlens.vsix");
const args = new Set(process.argv.slice(2));
const restricted = args.has("--restricted");

const TOTAL_TIMEOUT_MS = 8 * 60_000;
const LENS_TIMEOUT_MS = 120_000; // server start + first torch import + build
const UI_TIMEOUT_MS = 30_000;

const report = reporter("e2e");
const { log, step } = report;

class StepError extends Error {}

let serverProcess: ChildProcess | undefined;
let context: BrowserContext | undefined;
let tmpRoot = "";
let codeServerLog = "";
let userDataDir = "";
let folder = ""; // the copy of sourceFolder that code-server opens

function codeServerEntry(): string {
  const pointer = path.join(e2eHome, "code-server-entry");
  const entry = fs.existsSync(pointer) ? fs.readFileSync(pointer, "utf8").trim() : "";
  if (!entry || !fs.existsSync(entry)) {
    throw new StepError(`code-server not installed in ${e2eHome}: run client/scripts/install.sh first`);
  }
  return entry;
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    if (serverProcess?.exitCode !== null && serverProcess?.exitCode !== undefined) {
      throw new Error(`code-server exited with code ${serverProcess.exitCode} while waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
}

function pythonForServer(): string {
  if (process.env.PARAMLENS_E2E_PYTHON) return process.env.PARAMLENS_E2E_PYTHON;
  // python3 may be a pyenv shim: give VS Code the real interpreter.
  return execFileSync("python3", ["-c", "import sys; print(sys.executable)"], { encoding: "utf8", timeout: 30_000 }).trim();
}

function killServer(): void {
  killProcessGroup(serverProcess); // code-server, the extension host, our server
}

/** Text of the lines Monaco renders in the editor that contains `locator`. */
async function editorText(editor: Locator): Promise<string> {
  return (await editor.locator(".view-lines").innerText()).replace(/\u00a0/g, " ");
}

async function runCommand(page: Page, title: string): Promise<void> {
  await page.keyboard.press("F1");
  const input = page.locator(".quick-input-widget input");
  await input.waitFor({ state: "visible", timeout: UI_TIMEOUT_MS });
  await input.fill(`>${title}`);
  const row = page.locator(".quick-input-list .monaco-list-row", { hasText: title }).first();
  await row.waitFor({ state: "visible", timeout: UI_TIMEOUT_MS });
  await row.click(); // not Enter: the top row may be another, recently used command
}

/** Opens `relPath` with Quick Open, and waits for its tab. */
async function quickOpen(page: Page, relPath: string): Promise<void> {
  await page.keyboard.press("Control+P");
  const input = page.locator(".quick-input-widget input");
  await input.waitFor({ state: "visible", timeout: UI_TIMEOUT_MS });
  await input.fill(relPath);
  const row = page.locator(".quick-input-list .monaco-list-row", { hasText: path.basename(relPath) }).first();
  await row.waitFor({ state: "visible", timeout: UI_TIMEOUT_MS });
  await page.keyboard.press("Enter");
  const tab = page.locator(".tabs-container .tab", { hasText: path.basename(relPath) }).first();
  await tab.waitFor({ state: "visible", timeout: UI_TIMEOUT_MS });
}

/** Opens `relPath` with Quick Open; its editor is the one showing a line with `marker`. */
async function openFile(page: Page, relPath: string, marker = "class "): Promise<Locator> {
  await quickOpen(page, relPath);
  const editor = page.locator(".editor-instance .monaco-editor", { has: page.locator(".view-line", { hasText: marker }) }).first();
  await editor.waitFor({ state: "visible", timeout: UI_TIMEOUT_MS });
  return editor;
}

/** Hovers the mouse over `word` in the first rendered line containing `lineText`. */
async function hoverWord(page: Page, editor: Locator, lineText: string, word: string): Promise<void> {
  const line = editor.locator(".view-line", { hasText: lineText }).first();
  await line.waitFor({ state: "visible", timeout: UI_TIMEOUT_MS });
  const content = line.locator(":scope > span").first();
  const text = (await content.innerText()).replace(/\u00a0/g, " ");
  const box = await content.boundingBox();
  const index = text.indexOf(word);
  if (!box || index < 0) throw new Error(`cannot find "${word}" in line "${text}"`);
  const charWidth = box.width / text.length;
  const x = box.x + (index + word.length / 2) * charWidth;
  const y = box.y + box.height / 2;
  await page.mouse.move(x - 40, y + 60);
  await page.mouse.move(x, y, { steps: 5 });
}

/**
 * Does `show` (a mouse move, a key) until `shown` is visible: 3 tries of 10 s, since a hover
 * or a code action may be asked for before the editor is ready. `widget` names what to
 * report on failure.
 */
async function showUntilVisible(page: Page, shown: Locator, widget: string, show: () => Promise<void>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    await show();
    try {
      await shown.waitFor({ state: "visible", timeout: 10_000 });
      return;
    } catch (e) {
      if (attempt >= 3) {
        const texts = await page.locator(widget).allInnerTexts();
        throw new Error(`not shown after ${attempt} tries; ${widget}: ${JSON.stringify(texts)}; ${String(e)}`);
      }
      await page.keyboard.press("Escape");
    }
  }
}

function dumpLogs(): void {
  if (codeServerLog && fs.existsSync(codeServerLog)) {
    const text = fs.readFileSync(codeServerLog, "utf8");
    console.log(`----- code-server output (last 60 lines) -----\n${text.split("\n").slice(-60).join("\n")}`);
  }
  const logsDir = path.join(userDataDir, "logs");
  if (!userDataDir || !fs.existsSync(logsDir)) return;
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (/paramlens|exthost|remoteexthost/i.test(entry.name)) files.push(p);
    }
  };
  walk(logsDir);
  for (const file of files) {
    const text = fs.readFileSync(file, "utf8").trim();
    if (text) console.log(`----- ${path.relative(userDataDir, file)} (last 80 lines) -----\n${text.split("\n").slice(-80).join("\n")}`);
  }
}

async function main(): Promise<void> {
  if (!args.has("--no-package")) {
    await step("build the .vsix (npm run package)", async () => {
      execFileSync("npm", ["run", "package"], { cwd: clientDir, stdio: "inherit", timeout: 300_000 });
    });
  }
  if (!fs.existsSync(vsixPath)) throw new StepError(`${vsixPath} not found: run npm run package`);
  if (!fs.existsSync(path.join(sourceFolder, modelFile))) throw new StepError(`${path.join(sourceFolder, modelFile)} not found`);
  if (!fs.existsSync(chromiumPath)) throw new StepError(`${chromiumPath} not found: run client/scripts/install.sh`);
  const entry = codeServerEntry();

  tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "paramlens-e2e-"));
  userDataDir = path.join(tmpRoot, "user-data");
  const extensionsDir = path.join(tmpRoot, "extensions");
  const configFile = path.join(tmpRoot, "config.yaml");
  codeServerLog = path.join(tmpRoot, "code-server.log");
  fs.mkdirSync(path.join(userDataDir, "User"), { recursive: true });
  fs.writeFileSync(configFile, "auth: none\ncert: false\n");
  folder = path.join(tmpRoot, path.basename(sourceFolder)); // same name: the same explorer title
  fs.cpSync(sourceFolder, folder, { recursive: true, filter: (src) => path.basename(src) !== "__pycache__" });
  fs.mkdirSync(path.join(folder, path.dirname(lenetFile)), { recursive: true }); // another folder has none
  fs.writeFileSync(path.join(folder, lenetFile), LENET);
  const python = pythonForServer();
  log(`paramlens.python = ${python}; folder = ${folder}; profile = ${tmpRoot}`);
  const settings = {
    "paramlens.python": python,
    "paramlens.inputs": { LeNet: "torch.randn(1, 3, 32, 32)" },
    "editor.inlayHints.enabled": "on",
    "workbench.startupEditor": "none",
    "workbench.tips.enabled": false,
    "workbench.enableExperiments": false,
    "telemetry.telemetryLevel": "off",
    "extensions.autoCheckUpdates": false,
    "extensions.autoUpdate": false,
    "extensions.ignoreRecommendations": true,
    // Restricted scenario: trust is on, and the folder opens untrusted without a modal prompt.
    "security.workspace.trust.enabled": restricted,
    "security.workspace.trust.startupPrompt": "never",
    "security.workspace.trust.untrustedFiles": "open",
    "update.mode": "none",
    "window.restoreWindows": "none",
    "editor.hover.delay": 300,
    "editor.minimap.enabled": false,
    "chat.commandCenter.enabled": false,
    "git.enabled": false,
    "git.openRepositoryInParentFolders": "never",
  };
  fs.writeFileSync(path.join(userDataDir, "User", "settings.json"), JSON.stringify(settings, null, 2));
  // The interpreter is a machine's setting (scope machine-overridable): also where a remote
  // machine keeps it. Once in three runs, code-server's extension host saw the user
  // settings without it and started the server with python3.
  fs.mkdirSync(path.join(userDataDir, "Machine"), { recursive: true });
  fs.writeFileSync(
    path.join(userDataDir, "Machine", "settings.json"),
    JSON.stringify({ "paramlens.python": python }, null, 2),
  );
  const common = ["--config", configFile, "--user-data-dir", userDataDir, "--extensions-dir", extensionsDir];

  await step("install the .vsix into a fresh profile", async () => {
    const out = execFileSync(process.execPath, [entry, ...common, "--install-extension", vsixPath], {
      encoding: "utf8",
      timeout: 120_000,
    });
    if (!/successfully installed/i.test(out)) throw new Error(`unexpected output: ${out}`);
    const installed = fs.readdirSync(extensionsDir).filter((d) => d.startsWith("paramlens.paramlens-"));
    if (installed.length !== 1) throw new Error(`extension dir not found in ${extensionsDir}`);
  });

  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  await step(`start code-server on ${url}`, async () => {
    const out = fs.openSync(codeServerLog, "a");
    serverProcess = spawn(
      process.execPath,
      [
        entry,
        ...common,
        "--auth",
        "none",
        "--bind-addr",
        `127.0.0.1:${port}`,
        ...(restricted ? [] : ["--disable-workspace-trust"]),
        "--disable-telemetry",
        "--disable-update-check",
        "--disable-getting-started-override",
        folder,
      ],
      {
        detached: true,
        stdio: ["ignore", out, out],
        // A cache of its own: the run measures from cold and leaves nothing in the user's cache.
        env: { ...process.env, OMP_NUM_THREADS: "1", PARAMLENS_CACHE_DIR: path.join(tmpRoot, "cache") },
      },
    );
    await waitFor("code-server /healthz", () => httpOk(`${url}/healthz`), 60_000);
  });

  const page = await step("start chromium and load the workbench", async () => {
    context = await launchChromium(chromiumPath, path.join(tmpRoot, "chromium"));
    context.setDefaultTimeout(UI_TIMEOUT_MS);
    const p = context.pages()[0] ?? (await context.newPage());
    await p.goto(`${url}/?folder=${encodeURIComponent(folder)}`, { timeout: 60_000 });
    await p.locator(".monaco-workbench").waitFor({ state: "visible", timeout: 60_000 });
    await p.locator(".explorer-folders-view, .explorer-viewlet").first().waitFor({ state: "attached", timeout: 60_000 });
    return p;
  });

  const editor = await step(`open ${modelFile}`, () => openFile(page, modelFile));

  await step("extension activates (paramlens status bar item)", async () => {
    await page.locator(".statusbar-item", { hasText: "paramlens" }).first().waitFor({ state: "visible", timeout: 60_000 });
    const text = await page.locator(".statusbar-item", { hasText: "paramlens" }).first().innerText();
    log(`status bar: ${JSON.stringify(text.trim())}`);
  });
  if (restricted) {
    await restrictedScenario(page, editor);
    return;
  }
  if (args.has("--activation-only")) {
    await page.screenshot({ path: path.join(resultsDir, "e2e-activation.png") });
    return;
  }

  await step("class lens shows 669,706", async () => {
    await editor.locator(".codelens-decoration", { hasText: "669,706" }).first().waitFor({ state: "visible", timeout: LENS_TIMEOUT_MS });
    log(`class lens: ${JSON.stringify(await editor.locator(".codelens-decoration", { hasText: "669,706" }).first().innerText())}`);
  });
  await step("layer lens shows 401,920 and its output shape", async () => {
    const lens = editor.locator(".codelens-decoration", { hasText: "401,920" }).first();
    await lens.waitFor({ state: "visible", timeout: UI_TIMEOUT_MS });
    log(`layer lens: ${JSON.stringify(await lens.innerText())}`);
    await editor.locator(".codelens-decoration", { hasText: /401,920.*\[1, 512\]/ }).first().waitFor({ state: "visible", timeout: UI_TIMEOUT_MS });
  });
  await step("inlay hint in forward(): x = self.flatten(x) shows [1, 784]", async () => {
    // Monaco renders an inlay hint as text injected into the line: `x: [1, 784] = self.flatten(x)`.
    const line = editor.locator(".view-line", { hasText: "self.flatten(x)" }).first();
    await line.locator("span", { hasText: ": [1, 784]" }).first().waitFor({ state: "visible", timeout: UI_TIMEOUT_MS });
    log(`forward() line: ${JSON.stringify((await line.innerText()).replace(/\u00a0/g, " "))}`);
  });

  await step("save a screenshot", async () => {
    const toasts = await page.locator(".notifications-toasts .notification-toast").allInnerTexts();
    for (const t of toasts) log(`note: notification shown: ${JSON.stringify(t.replace(/\s+/g, " ").slice(0, 300))}`);
    const serverErrors = toasts.filter((t) => t.includes("Error in server"));
    if (serverErrors.length > 0) throw new Error(`the server reported errors: ${serverErrors.join(" | ")}`);
    if (toasts.length > 0) await runCommand(page, "Notifications: Clear All Notifications");
    await page.mouse.move(5, 5);
    await page.waitForTimeout(500);
    const shot = args.has("--update-screenshot")
      ? path.join(clientDir, "images", "screenshot.png")
      : path.join(resultsDir, "e2e-screenshot.png");
    fs.mkdirSync(path.dirname(shot), { recursive: true });
    await page.screenshot({ path: shot });
  });

  await step("hover on the first nn.Linear shows [512, 784]", async () => {
    const hover = page.locator(".monaco-hover", { hasText: "[512, 784]" }).first();
    await showUntilVisible(page, hover, ".monaco-hover", () => hoverWord(page, editor, "nn.Linear(28 * 28, 512)", "Linear"));
    log(`hover: ${JSON.stringify((await hover.innerText()).slice(0, 300))}`);
    await page.mouse.move(5, 5);
    await page.keyboard.press("Escape");
  });

  await step("paramlens: Show Model Summary opens the table", async () => {
    // Put the cursor inside the class, so the command picks it without asking.
    await editor.locator(".view-line", { hasText: "self.flatten = nn.Flatten()" }).first().click();
    await runCommand(page, "paramlens: Show Model Summary");
    const tab = page.locator(".tabs-container .tab", { hasText: "NeuralNetwork summary" }).first();
    await tab.waitFor({ state: "visible", timeout: LENS_TIMEOUT_MS });
    const summary = page.locator(".editor-instance .monaco-editor", { has: page.locator(".view-line", { hasText: "669,706" }) }).filter({
      hasNot: page.locator(".codelens-decoration"),
    });
    await summary.first().waitFor({ state: "visible", timeout: UI_TIMEOUT_MS });
    const text = await editorText(summary.first());
    log(`summary tab:\n${text}`);
    if (!/669,706/.test(text)) throw new Error("summary has no 669,706");
  });

  await step("clicking the class lens opens the summary too", async () => {
    const tab = page.locator(".tabs-container .tab", { hasText: "NeuralNetwork summary" });
    await tab.first().hover();
    await tab.first().locator(".tab-actions .action-label").first().click();
    await tab.first().waitFor({ state: "detached", timeout: UI_TIMEOUT_MS });
    await page.locator(".tabs-container .tab", { hasText: "models.py" }).first().waitFor({ state: "visible" });
    await editor.locator(".codelens-decoration a", { hasText: "669,706" }).first().click();
    await tab.first().waitFor({ state: "visible", timeout: LENS_TIMEOUT_MS });
  });

  await quickFixScenario(page);
  await notebookScenario(page);
}

/** A notebook in VS Code's notebook editor (no kernel): a class lens, an inlay hint in forward() and a hover, in its cells. */
async function notebookScenario(page: Page): Promise<void> {
  const notebookFile = "notebooks/inspecting_model_parameters.ipynb";
  const cell = await step(`open ${notebookFile} in the notebook editor`, async () => {
    await runCommand(page, "View: Close All Editors"); // recipe/models.py has the same class
    await quickOpen(page, notebookFile);
    // each code cell is an editor of its own
    const found = page.locator(".monaco-editor", { has: page.locator(".view-line", { hasText: "class NeuralNetwork" }) }).first();
    await found.waitFor({ state: "visible", timeout: UI_TIMEOUT_MS });
    return found;
  });
  await step("the cell's class lens shows 669,706", async () => {
    const lens = cell.locator(".codelens-decoration", { hasText: "669,706" }).first();
    await lens.waitFor({ state: "visible", timeout: LENS_TIMEOUT_MS });
    log(`cell class lens: ${JSON.stringify(await lens.innerText())}`);
  });
  await step("inlay hint in the cell's forward(): x = self.flatten(x) shows [1, 784]", async () => {
    const line = cell.locator(".view-line", { hasText: "self.flatten(x)" }).first();
    await line.locator("span", { hasText: ": [1, 784]" }).first().waitFor({ state: "visible", timeout: UI_TIMEOUT_MS });
    log(`cell forward() line: ${JSON.stringify((await line.innerText()).replace(/\u00a0/g, " "))}`);
  });
  await step("hover on the cell's first nn.Linear shows [512, 784]", async () => {
    const hover = page.locator(".monaco-hover", { hasText: "[512, 784]" }).first();
    await showUntilVisible(page, hover, ".monaco-hover", () => hoverWord(page, cell, "nn.Linear(28 * 28, 512)", "Linear"));
    log(`cell hover: ${JSON.stringify((await hover.innerText()).slice(0, 300))}`);
    await page.mouse.move(5, 5);
    await page.keyboard.press("Escape");
  });
}

/** A failing forward() in lenet.py: its warning, the quick fix applied through the UI, and saved. */
async function quickFixScenario(page: Page): Promise<void> {
  const editor = await step(`open ${lenetFile}`, () => openFile(page, lenetFile, "class LeNet"));
  const fc1Use = editor.locator(".view-line", { hasText: "F.relu(self.fc1(x))" }).first();
  const warnings = editor.locator(".view-overlays .squiggly-warning");

  await step("forward() fails: a warning on x = F.relu(self.fc1(x))", async () => {
    // Lenses may arrive after the warning and push lines down: wait for the layer lenses first.
    const fc1Lens = editor.locator(".codelens-decoration", { hasText: "Linear(256 -> 120)" }).first();
    await fc1Lens.waitFor({ state: "visible", timeout: LENS_TIMEOUT_MS });
    log(`class lens: ${JSON.stringify(await editor.locator(".codelens-decoration", { hasText: "LeNet" }).first().innerText())}`);
    await waitFor("a warning squiggle", async () => (await warnings.count()) > 0, LENS_TIMEOUT_MS);
    // Hovering the squiggle shows the message. Aim at the squiggle itself:
    // the line's inlay hints are in a smaller font, so character widths would be off.
    if ((await warnings.count()) !== 1) throw new Error(`${await warnings.count()} warnings, expected 1`);
    const box = await warnings.first().boundingBox();
    if (!box) throw new Error("the warning squiggle has no box");
    const hover = page.locator(".monaco-hover", { hasText: "in_features should be 400" }).first();
    await showUntilVisible(page, hover, ".monaco-hover", async () => {
      await page.mouse.move(box.x + box.width / 2 - 40, box.y + 60);
      await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2 - 4, { steps: 5 });
    });
    log(`warning: ${JSON.stringify((await hover.innerText()).replace(/\s+/g, " ").slice(0, 300))}`);
    await page.mouse.move(5, 5);
    await page.keyboard.press("Escape");
  });

  await step("Ctrl+. on that line offers \"Set in_features to 400\"; picking it edits line 11", async () => {
    await fc1Use.click();
    const action = page.locator(".action-widget .monaco-list-row", { hasText: "Set in_features to 400" }).first();
    await showUntilVisible(page, action, ".action-widget", () => page.keyboard.press("Control+."));
    log(`quick fix: ${JSON.stringify((await action.innerText()).trim())}`);
    // The widget lays a pointer block over the workbench until the mouse moves: move first.
    const box = await action.boundingBox();
    if (box) await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2, { steps: 3 });
    await action.click();
    await editor.locator(".view-line", { hasText: "self.fc1 = nn.Linear(400, 120)" }).first().waitFor({ state: "visible", timeout: UI_TIMEOUT_MS });
    const text = await editorText(editor);
    if (text.includes("Linear(256, 120)")) throw new Error(`the old declaration is still there:\n${text}`);
  });

  await step("after saving, forward() runs: no warning, fc1 shows [1, 120]", async () => {
    const tab = page.locator(".tabs-container .tab", { hasText: path.basename(lenetFile) }).first();
    await page.keyboard.press("Control+S");
    const fixed = LENET.replace("Linear(256, 120)", "Linear(400, 120)"); // and nothing else
    const onDisk = (): string => fs.readFileSync(path.join(folder, lenetFile), "utf8");
    await waitFor("LeNet with fc1 = nn.Linear(400, 120) on disk", async () => onDisk() === fixed, UI_TIMEOUT_MS);
    await waitFor("the saved tab (not dirty)", async () => !/\bdirty\b/.test((await tab.getAttribute("class")) ?? ""), UI_TIMEOUT_MS);
    await fc1Use.locator("span", { hasText: ": [1, 120]" }).first().waitFor({ state: "visible", timeout: LENS_TIMEOUT_MS });
    await waitFor("no warning squiggle", async () => (await warnings.count()) === 0, UI_TIMEOUT_MS);
    log(`fc1's line: ${JSON.stringify((await fc1Use.innerText()).replace(/\u00a0/g, " "))}`);
  });
}

async function restrictedScenario(page: Page, editor: Locator): Promise<void> {
  await step("Restricted Mode: status bar says paramlens is off", async () => {
    await page.locator(".statusbar-item", { hasText: "paramlens: off" }).first().waitFor({ state: "visible", timeout: UI_TIMEOUT_MS });
  });
  await step("Restricted Mode: a message says why and how to trust", async () => {
    const toast = page.locator(".notifications-toasts .notification-toast", { hasText: "Restricted Mode" }).first();
    await toast.waitFor({ state: "visible", timeout: UI_TIMEOUT_MS });
    const text = await toast.innerText();
    log(`message: ${JSON.stringify(text)}`);
    if (!/Manage Workspace Trust/.test(text)) throw new Error("the message offers no Manage Workspace Trust action");
  });
  await step("Restricted Mode: no lenses (the server did not start)", async () => {
    await page.waitForTimeout(8000);
    const lenses = await editor.locator(".codelens-decoration").count();
    if (lenses > 0) throw new Error(`${lenses} code lenses shown in Restricted Mode`);
  });
  await step("trusting the folder starts the server and shows lenses", async () => {
    await page.locator(".notifications-toasts .notification-toast", { hasText: "Restricted Mode" }).first()
      .locator(".monaco-button", { hasText: "Manage Workspace Trust" }).click();
    const trustButton = page.locator(".workspace-trust-editor .monaco-button", { hasText: /^Trust$|Trust Folder/ }).first();
    await trustButton.waitFor({ state: "visible", timeout: UI_TIMEOUT_MS });
    await trustButton.click();
    await page.locator(".tabs-container .tab", { hasText: "models.py" }).first().click();
    await editor.locator(".codelens-decoration", { hasText: "669,706" }).first().waitFor({ state: "visible", timeout: LENS_TIMEOUT_MS });
  });
}

async function cleanup(failed: boolean): Promise<void> {
  try {
    if (failed && context) {
      fs.mkdirSync(resultsDir, { recursive: true });
      const shot = path.join(resultsDir, "e2e-failure.png");
      const page = context.pages()[0];
      if (page) {
        await page.screenshot({ path: shot, timeout: 10_000 });
        console.error(`failure screenshot: ${shot}`);
      }
    }
  } catch (e) {
    console.error(`could not take a failure screenshot: ${String(e)}`);
  }
  if (failed) dumpLogs();
  try {
    await context?.close();
  } catch {
    /* the browser may already be gone */
  }
  killServer();
  if (tmpRoot && !failed && !process.env.PARAMLENS_E2E_KEEP) fs.rmSync(tmpRoot, { recursive: true, force: true });
  else if (tmpRoot) console.error(`profile and logs kept in ${tmpRoot}`);
}

runToEnd(report, TOTAL_TIMEOUT_MS, main, cleanup);
