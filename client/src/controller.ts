/**
 * The extension's behaviour, written against the Host interface: Workspace
 * Trust gating, choosing the interpreter, starting/restarting the server, the
 * torch check, the status bar and the model summary command. No `vscode`
 * import, so unit tests drive it with a stub host.
 */
import type { Disposable, Host, ServerClient } from "./host";
import { choosePython, describeChoice, type PythonChoice } from "./interpreter";
import { serverLaunch, torchMissingMessage } from "./launch";
import { changeNeedsRestart, readSettings } from "./settings";
import { CMD_MANAGE_TRUST, parseStatusNotification, statusView, type ServerState } from "./status";
import { modelAtCursor, parseModels, parseSummary, SERVER_CMD_MODELS, SERVER_CMD_SUMMARY } from "./summary";

export const ACTION_MANAGE_TRUST = "Manage Workspace Trust";
export const ACTION_OPEN_SETTINGS = "Open Settings";
export const ACTION_SHOW_OUTPUT = "Show Output";

export const RESTRICTED_MESSAGE =
  "paramlens is off in Restricted Mode: counting parameters runs this folder's model code. " +
  "Trust the folder (Manage Workspace Trust) to see parameter lenses and hovers.";

export class Controller implements Disposable {
  private client: ServerClient | undefined;
  private choice: PythonChoice | undefined;
  private state: ServerState = { kind: "stopped" };
  private torchProblem: { python: string; message: string } | undefined;
  private readonly torchChecked = new Set<string>();
  private readonly disposables: Disposable[] = [];
  /** Start/stop/restart run one after another, never interleaved. */
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly host: Host) {}

  async activate(): Promise<void> {
    this.disposables.push(
      this.host.onDidGrantTrust(() => void this.start()),
      this.host.onDidChangeSettings((affects) => {
        if (this.host.isTrusted() && changeNeedsRestart(affects)) void this.restart();
      }),
    );
    // Registered before the server starts, so a change is never missed.
    this.host
      .onDidChangePythonExtensionInterpreter(() => void this.onPythonExtensionChanged())
      .then((d) => this.disposables.push(d))
      .catch((e) => this.host.log(`paramlens: cannot watch the Python extension: ${String(e)}`));

    if (!this.host.isTrusted()) {
      this.setState({ kind: "restricted" });
      void this.host.showMessage("warning", RESTRICTED_MESSAGE, ACTION_MANAGE_TRUST).then((action) => {
        if (action === ACTION_MANAGE_TRUST) void this.host.executeCommand(CMD_MANAGE_TRUST);
      });
      return;
    }
    await this.start();
  }

  get currentState(): ServerState {
    return this.state;
  }

  get python(): string | undefined {
    return this.choice?.python;
  }

  start(): Promise<void> {
    return this.enqueue(() => this.doStart());
  }

  restart(): Promise<void> {
    return this.enqueue(async () => {
      await this.doStop();
      await this.doStart();
    });
  }

  stop(): Promise<void> {
    return this.enqueue(() => this.doStop());
  }

  dispose(): void {
    for (const d of this.disposables.splice(0)) d.dispose();
  }

  private enqueue(op: () => Promise<void>): Promise<void> {
    const next = this.queue.then(op, op);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async choosePython(): Promise<PythonChoice> {
    const { settings, problems } = readSettings((key) => this.host.getSetting(key));
    for (const p of problems) this.host.log(p);
    let pythonExtension: string | undefined;
    if (settings.python === "") {
      try {
        pythonExtension = await this.host.pythonExtensionInterpreter();
      } catch (e) {
        this.host.log(`paramlens: the Python extension gave no interpreter: ${String(e)}`);
      }
    }
    return choosePython({
      setting: settings.python,
      pythonExtension,
      workspaceFolders: this.host.workspaceFolders(),
      isFile: (f) => this.host.isFile(f),
      homeDir: this.host.homeDir(),
    });
  }

  private async doStart(): Promise<void> {
    if (this.client) return;
    if (!this.host.isTrusted()) {
      this.setState({ kind: "restricted" });
      return;
    }
    const choice = await this.choosePython();
    this.choice = choice;
    this.torchProblem = undefined;
    this.host.log(`paramlens: using Python ${describeChoice(choice)}`);
    const launch = serverLaunch(this.host.extensionPath, choice.python, this.host.processEnv());
    this.setState({ kind: "starting" });
    const client = this.host.createClient(launch, {
      onStatus: (params) => {
        const state = parseStatusNotification(params);
        if (state) this.setState(state);
      },
      onSummaryCommand: (args, result) =>
        void this.showSummaryResult(result, stringAt(args, 1), stringAt(args, 0)),
    });
    this.client = client;
    void this.checkTorch(choice.python);
    try {
      await client.start();
    } catch (e) {
      const message = `paramlens server failed to start with ${choice.python}: ${e instanceof Error ? e.message : String(e)}`;
      this.host.log(message);
      this.setState({ kind: "error", message });
      return;
    }
    // A server that sends no status yet is still usable.
    if (this.state.kind === "starting") this.setState({ kind: "ready" });
  }

  private async doStop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (!client) return;
    try {
      await client.stop();
    } catch (e) {
      this.host.log(`paramlens: error while stopping the server: ${String(e)}`);
    }
    this.setState({ kind: "stopped" });
  }

  private async onPythonExtensionChanged(): Promise<void> {
    if (!this.host.isTrusted() || !this.client) return;
    const next = await this.choosePython();
    if (next.python !== this.choice?.python) {
      this.host.log(`paramlens: interpreter changed to ${next.python}; restarting`);
      await this.restart();
    }
  }

  /** Runs `<python> -c "import torch"` once per interpreter and says what to do if it fails. */
  private async checkTorch(python: string): Promise<void> {
    if (this.torchChecked.has(python)) return;
    this.torchChecked.add(python);
    const result = await this.host.checkTorch(python);
    const message = torchMissingMessage(python, result);
    if (message === undefined) return;
    this.torchChecked.delete(python); // check again after a restart (torch may be installed by then)
    if (this.choice?.python !== python) return; // a restart moved on already
    this.host.log(message);
    this.torchProblem = { python, message };
    this.setState(this.state);
    const action = await this.host.showMessage("warning", message, ACTION_OPEN_SETTINGS, ACTION_SHOW_OUTPUT);
    if (action === ACTION_OPEN_SETTINGS) void this.host.executeCommand("workbench.action.openSettings", "paramlens.python");
    else if (action === ACTION_SHOW_OUTPUT) this.host.showOutput();
  }

  private setState(state: ServerState): void {
    this.state = state;
    const healthy = state.kind === "starting" || state.kind === "building" || state.kind === "ready";
    if (this.torchProblem && healthy) {
      this.host.setStatus(statusView({ kind: "noTorch", ...this.torchProblem }));
    } else {
      this.host.setStatus(statusView(state));
    }
  }

  /** paramlens: Show Model Summary. */
  async showSummary(): Promise<void> {
    const editor = this.host.activeEditor();
    if (!editor || editor.languageId !== "python") {
      await this.host.showMessage("info", "paramlens: open a Python file with an nn.Module class to see its summary.");
      return;
    }
    const client = this.client;
    if (!client) {
      const why = this.host.isTrusted() ? "the paramlens server is not running" : RESTRICTED_MESSAGE;
      await this.host.showMessage("warning", `paramlens: cannot show a summary: ${why}`);
      return;
    }
    const models = parseModels(await client.executeCommand(SERVER_CMD_MODELS, [editor.uri]));
    if (models.length === 0) {
      await this.host.showMessage("info", "paramlens: no nn.Module models found in this file.");
      return;
    }
    const model = modelAtCursor(editor.lines, editor.cursorLine, models) ?? (models.length === 1 ? models[0] : await this.host.pickModel(models));
    if (!model) return;
    const result = await client.executeCommand(SERVER_CMD_SUMMARY, [editor.uri, model.name]);
    await this.showSummaryResult(result, model.name, editor.uri);
  }

  /** Opens a summary returned by the server, or says why there is none. */
  async showSummaryResult(result: unknown, className?: string, sourceUri?: string): Promise<void> {
    const summary = parseSummary(result);
    if (!summary.ok) {
      await this.host.showMessage("error", `paramlens: ${summary.error}`);
      return;
    }
    await this.host.openSummary(className ?? modelName(summary.model) ?? "model", sourceUri ?? "", summary.text);
  }
}

function modelName(model: unknown): string | undefined {
  if (typeof model !== "object" || model === null) return undefined;
  const m = model as Record<string, unknown>;
  for (const key of ["name", "class_name", "className"]) {
    if (typeof m[key] === "string") return m[key];
  }
  return undefined;
}

function stringAt(args: unknown[], index: number): string | undefined {
  const value = args[index];
  return typeof value === "string" ? value : undefined;
}
