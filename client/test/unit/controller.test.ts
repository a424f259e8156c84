import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ACTION_MANAGE_TRUST, Controller, RESTRICTED_MESSAGE } from "../../src/controller";
import type { ClientHandlers, Disposable, EditorSnapshot, Host, ServerClient, Severity } from "../../src/host";
import type { ServerLaunch, TorchCheck } from "../../src/launch";
import type { StatusView } from "../../src/status";
import type { ModelInfo } from "../../src/summary";

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

class FakeClient implements ServerClient {
  started = 0;
  stopped = 0;
  calls: [string, unknown[]][] = [];
  constructor(
    readonly launch: ServerLaunch,
    readonly handlers: ClientHandlers,
    private readonly answers: Record<string, unknown>,
    private readonly failStart: boolean,
  ) {}
  async start(): Promise<void> {
    this.started++;
    if (this.failStart) throw new Error("spawn python3 ENOENT");
  }
  async stop(): Promise<void> {
    this.stopped++;
  }
  async executeCommand(command: string, args: unknown[]): Promise<unknown> {
    this.calls.push([command, args]);
    return this.answers[command];
  }
}

class FakeHost implements Host {
  extensionPath = "/ext";
  trusted = true;
  settings: Record<string, unknown> = {};
  pythonExt: string | undefined;
  torch: TorchCheck = { ok: true };
  files = new Set<string>();
  statuses: StatusView[] = [];
  messages: { severity: Severity; text: string; actions: string[] }[] = [];
  answer: string | undefined;
  commands: unknown[][] = [];
  clients: FakeClient[] = [];
  answers: Record<string, unknown> = {};
  failStart = false;
  editor: EditorSnapshot | undefined;
  picked: ModelInfo | undefined;
  pickOffers: ModelInfo[][] = [];
  opened: { className: string; sourceUri: string; text: string }[] = [];
  logs: string[] = [];
  torchChecks: string[] = [];
  grant: (() => void) | undefined;
  settingsListener: ((affects: (s: string) => boolean) => void) | undefined;
  pythonListener: (() => void) | undefined;

  isTrusted(): boolean {
    return this.trusted;
  }
  onDidGrantTrust(listener: () => void): Disposable {
    this.grant = listener;
    return { dispose: () => (this.grant = undefined) };
  }
  getSetting(key: string): unknown {
    return this.settings[key];
  }
  onDidChangeSettings(listener: (affects: (section: string) => boolean) => void): Disposable {
    this.settingsListener = listener;
    return { dispose: () => undefined };
  }
  workspaceFolders(): string[] {
    return ["/ws"];
  }
  isFile(file: string): boolean {
    return this.files.has(file);
  }
  homeDir(): string {
    return "/home/u";
  }
  processEnv(): NodeJS.ProcessEnv {
    return { PATH: "/usr/bin" };
  }
  async pythonExtensionInterpreter(): Promise<string | undefined> {
    return this.pythonExt;
  }
  async onDidChangePythonExtensionInterpreter(listener: () => void): Promise<Disposable> {
    this.pythonListener = listener;
    return { dispose: () => undefined };
  }
  async checkTorch(python: string): Promise<TorchCheck> {
    this.torchChecks.push(python);
    return this.torch;
  }
  setStatus(view: StatusView): void {
    this.statuses.push(view);
  }
  log(line: string): void {
    this.logs.push(line);
  }
  showOutput(): void {
    this.commands.push(["showOutput"]);
  }
  async showMessage(severity: Severity, text: string, ...actions: string[]): Promise<string | undefined> {
    this.messages.push({ severity, text, actions });
    return this.answer;
  }
  async executeCommand(command: string, ...args: unknown[]): Promise<unknown> {
    this.commands.push([command, ...args]);
    return undefined;
  }
  activeEditor(): EditorSnapshot | undefined {
    return this.editor;
  }
  async pickModel(models: ModelInfo[]): Promise<ModelInfo | undefined> {
    this.pickOffers.push(models);
    return this.picked;
  }
  async openSummary(className: string, sourceUri: string, text: string): Promise<void> {
    this.opened.push({ className, sourceUri, text });
  }
  createClient(launch: ServerLaunch, handlers: ClientHandlers): ServerClient {
    const client = new FakeClient(launch, handlers, this.answers, this.failStart);
    this.clients.push(client);
    return client;
  }
  get lastStatus(): StatusView | undefined {
    return this.statuses[this.statuses.length - 1];
  }
}

describe("Controller: start-up", () => {
  it("starts the server with the chosen Python and bundled libs", async () => {
    const host = new FakeHost();
    host.settings.python = "/py/bin/python";
    const c = new Controller(host);
    await c.activate();
    assert.equal(host.clients.length, 1);
    const client = host.clients[0]!;
    assert.equal(client.started, 1);
    assert.equal(client.launch.command, "/py/bin/python");
    assert.deepEqual(client.launch.args, ["-m", "paramlens", "lsp"]);
    assert.match(client.launch.env.PYTHONPATH ?? "", /^\/ext\/bundled\/libs/);
    assert.deepEqual(client.launch.initializationOptions, { python: "/py/bin/python" });
    await tick();
    assert.deepEqual(host.torchChecks, ["/py/bin/python"]);
    assert.equal(c.currentState.kind, "ready");
  });

  it("uses the Python extension's interpreter, then the workspace venv, then python3", async () => {
    const host = new FakeHost();
    host.pythonExt = "/conda/bin/python";
    await new Controller(host).activate();
    assert.equal(host.clients[0]!.launch.command, "/conda/bin/python");

    const host2 = new FakeHost();
    host2.files.add("/ws/.venv/bin/python");
    await new Controller(host2).activate();
    assert.equal(host2.clients[0]!.launch.command, "/ws/.venv/bin/python");

    const host3 = new FakeHost();
    await new Controller(host3).activate();
    assert.equal(host3.clients[0]!.launch.command, "python3");
  });

  it("shows the server's status notifications", async () => {
    const host = new FakeHost();
    const c = new Controller(host);
    await c.activate();
    const handlers = host.clients[0]!.handlers;
    handlers.onStatus({ state: "building", model: "NeuralNetwork" });
    assert.match(host.lastStatus!.text, /NeuralNetwork/);
    handlers.onStatus({ state: "ready", models: 2 });
    assert.match(host.lastStatus!.text, /2 models/);
    handlers.onStatus({ state: "error", message: "worker died" });
    assert.equal(host.lastStatus!.severity, "error");
    assert.equal(host.lastStatus!.command, "paramlens.showOutput");
    handlers.onStatus({ bogus: true });
    assert.equal(c.currentState.kind, "error");
  });

  it("reports a server that fails to start", async () => {
    const host = new FakeHost();
    host.failStart = true;
    const c = new Controller(host);
    await c.activate();
    assert.equal(c.currentState.kind, "error");
    assert.match(host.lastStatus!.tooltip, /failed to start with python3: spawn python3 ENOENT/);
  });
});

describe("Controller: torch check", () => {
  it("says clearly when the interpreter has no torch and keeps the warning in the status bar", async () => {
    const host = new FakeHost();
    host.torch = { ok: false, reason: "no-torch", detail: "ModuleNotFoundError: No module named 'torch'" };
    host.answer = "Open Settings";
    const c = new Controller(host);
    await c.activate();
    await tick();
    await tick();
    const msg = host.messages.find((m) => m.severity === "warning");
    assert.ok(msg, "a warning was shown");
    assert.match(msg.text, /python3 -m pip install torch/);
    assert.match(msg.text, /paramlens\.python/);
    assert.match(host.lastStatus!.text, /no torch/);
    host.clients[0]!.handlers.onStatus({ state: "ready", models: 1 });
    assert.match(host.lastStatus!.text, /no torch/, "server status does not hide the missing torch");
    assert.deepEqual(host.commands.at(-1), ["workbench.action.openSettings", "paramlens.python"]);
  });

  it("checks each interpreter once", async () => {
    const host = new FakeHost();
    const c = new Controller(host);
    await c.activate();
    await c.restart();
    await tick();
    assert.deepEqual(host.torchChecks, ["python3"]);
  });
});

describe("Controller: Workspace Trust", () => {
  it("does not start in a restricted workspace, says why, and starts once trusted", async () => {
    const host = new FakeHost();
    host.trusted = false;
    host.answer = ACTION_MANAGE_TRUST;
    const c = new Controller(host);
    await c.activate();
    await tick();
    assert.equal(host.clients.length, 0, "no server in Restricted Mode");
    assert.equal(host.torchChecks.length, 0, "no workspace Python run in Restricted Mode");
    assert.equal(c.currentState.kind, "restricted");
    assert.equal(host.lastStatus!.command, "workbench.trust.manage");
    assert.equal(host.messages[0]!.text, RESTRICTED_MESSAGE);
    assert.deepEqual(host.commands.at(-1), ["workbench.trust.manage"]);

    host.settingsListener!((s) => s === "paramlens.python");
    await tick();
    assert.equal(host.clients.length, 0, "settings changes do not start it either");

    host.trusted = true;
    host.grant!();
    await tick();
    await tick();
    assert.equal(host.clients.length, 1);
    assert.equal(host.clients[0]!.started, 1);
  });
});

describe("Controller: restarts", () => {
  it("restarts when paramlens.python changes, not for other settings", async () => {
    const host = new FakeHost();
    const c = new Controller(host);
    await c.activate();
    host.settingsListener!((s) => s === "paramlens.timeout");
    await tick();
    assert.equal(host.clients.length, 1);
    host.settings.python = "/new/python";
    host.settingsListener!((s) => s === "paramlens.python");
    await c.stop(); // queued after the restart
    assert.equal(host.clients.length, 2);
    assert.equal(host.clients[0]!.stopped, 1);
    assert.equal(host.clients[1]!.launch.command, "/new/python");
  });

  it("restarts when the Python extension's interpreter changes", async () => {
    const host = new FakeHost();
    host.pythonExt = "/a/python";
    const c = new Controller(host);
    await c.activate();
    await tick();
    host.pythonExt = "/b/python";
    host.pythonListener!();
    await tick();
    await c.stop();
    assert.equal(host.clients.length, 2);
    assert.equal(host.clients[1]!.launch.command, "/b/python");
  });

  it("serialises concurrent restarts", async () => {
    const host = new FakeHost();
    const c = new Controller(host);
    await c.activate();
    await Promise.all([c.restart(), c.restart(), c.restart()]);
    assert.equal(host.clients.length, 4);
    assert.deepEqual(
      host.clients.map((cl) => [cl.started, cl.stopped]),
      [
        [1, 1],
        [1, 1],
        [1, 1],
        [1, 0],
      ],
    );
  });
});

describe("Controller: Show Model Summary", () => {
  const lines = ["import torch", "from torch import nn", "", "class A(nn.Module):", "    pass", "", "class B(nn.Module):", "    pass"];

  async function ready(models: ModelInfo[]): Promise<{ host: FakeHost; c: Controller }> {
    const host = new FakeHost();
    host.answers["paramlens.models"] = { models };
    host.answers["paramlens.summary"] = { text: "Total params: 669,706", model: {} };
    const c = new Controller(host);
    await c.activate();
    return { host, c };
  }

  it("summarises the model under the cursor", async () => {
    const { host, c } = await ready([
      { name: "A", line: 4 },
      { name: "B", line: 7 },
    ]);
    host.editor = { uri: "file:///w/m.py", languageId: "python", lines, cursorLine: 7 };
    await c.showSummary();
    const calls = host.clients[0]!.calls;
    assert.deepEqual(calls, [
      ["paramlens.models", ["file:///w/m.py"]],
      ["paramlens.summary", ["file:///w/m.py", "B"]],
    ]);
    assert.deepEqual(host.opened, [{ className: "B", sourceUri: "file:///w/m.py", text: "Total params: 669,706" }]);
    assert.equal(host.pickOffers.length, 0);
  });

  it("offers a quick pick when the cursor is outside every model", async () => {
    const models = [
      { name: "A", line: 4 },
      { name: "B", line: 7 },
    ];
    const { host, c } = await ready(models);
    host.editor = { uri: "file:///w/m.py", languageId: "python", lines, cursorLine: 0 };
    host.picked = models[0];
    await c.showSummary();
    assert.deepEqual(host.pickOffers, [models]);
    assert.equal(host.opened[0]!.className, "A");
  });

  it("shows the server's error instead of a tab", async () => {
    const { host, c } = await ready([{ name: "A", line: 4 }]);
    host.answers["paramlens.summary"] = { error: "NameError: name 'x' is not defined" };
    host.editor = { uri: "file:///w/m.py", languageId: "python", lines, cursorLine: 4 };
    await c.showSummary();
    assert.equal(host.opened.length, 0);
    assert.match(host.messages.at(-1)!.text, /NameError/);
    assert.equal(host.messages.at(-1)!.severity, "error");
  });

  it("says so when the file has no models or is not Python", async () => {
    const { host, c } = await ready([]);
    host.editor = { uri: "file:///w/m.py", languageId: "python", lines, cursorLine: 4 };
    await c.showSummary();
    assert.match(host.messages.at(-1)!.text, /no nn\.Module models/);
    host.editor = { uri: "file:///w/r.md", languageId: "markdown", lines, cursorLine: 0 };
    await c.showSummary();
    assert.match(host.messages.at(-1)!.text, /open a Python file/);
  });

  it("opens a tab when a class lens runs the server's summary command", async () => {
    const { host } = await ready([{ name: "A", line: 4 }]);
    host.clients[0]!.handlers.onSummaryCommand(["file:///w/m.py", "A"], { text: "table", model: {} });
    await tick();
    assert.deepEqual(host.opened, [{ className: "A", sourceUri: "file:///w/m.py", text: "table" }]);
  });
});
