/**
 * The one place (besides extension.ts and languageClient.ts) that calls
 * `vscode.*`: implements the Host interface for the controller.
 */
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as vscode from "vscode";
import type { Disposable, EditorSnapshot, Host, Severity } from "./host";
import { createLanguageClient } from "./languageClient";
import { TORCH_CHECK_ARGS, type TorchCheck } from "./launch";
import { SECTION } from "./settings";
import type { StatusView } from "./status";
import { SUMMARY_SCHEME, summaryPath, summaryQuery, type ModelInfo } from "./summary";

const PYTHON_EXTENSION_ID = "ms-python.python";
const TORCH_CHECK_TIMEOUT_MS = 120_000;

/** Serves the text of summary tabs; documents of a content provider are read-only. */
export class SummaryProvider implements vscode.TextDocumentContentProvider {
  private readonly texts = new Map<string, string>();
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;

  set(uri: vscode.Uri, text: string): void {
    this.texts.set(uri.toString(), text);
    this.changed.fire(uri);
  }

  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.texts.get(uri.toString()) ?? "(summary no longer available: run paramlens: Show Model Summary again)";
  }

  dispose(): void {
    this.changed.dispose();
  }
}

export class VscodeHost implements Host, vscode.Disposable {
  readonly extensionPath: string;
  private readonly statusItem: vscode.StatusBarItem;
  readonly output: vscode.OutputChannel;
  private readonly summaries = new SummaryProvider();
  private readonly registrations: vscode.Disposable[] = [];

  constructor(context: vscode.ExtensionContext) {
    this.extensionPath = context.extensionPath;
    this.output = vscode.window.createOutputChannel("paramlens");
    this.statusItem = vscode.window.createStatusBarItem("paramlens.status", vscode.StatusBarAlignment.Right, 100);
    this.statusItem.name = "paramlens";
    this.registrations.push(vscode.workspace.registerTextDocumentContentProvider(SUMMARY_SCHEME, this.summaries));
  }

  isTrusted(): boolean {
    return vscode.workspace.isTrusted;
  }

  onDidGrantTrust(listener: () => void): Disposable {
    return vscode.workspace.onDidGrantWorkspaceTrust(listener);
  }

  getSetting(key: string): unknown {
    return vscode.workspace.getConfiguration(SECTION).get(key);
  }

  onDidChangeSettings(listener: (affects: (section: string) => boolean) => void): Disposable {
    return vscode.workspace.onDidChangeConfiguration((e) => listener((s) => e.affectsConfiguration(s)));
  }

  workspaceFolders(): string[] {
    return (vscode.workspace.workspaceFolders ?? []).filter((f) => f.uri.scheme === "file").map((f) => f.uri.fsPath);
  }

  isFile(file: string): boolean {
    try {
      return fs.statSync(file).isFile();
    } catch {
      return false;
    }
  }

  homeDir(): string {
    return os.homedir();
  }

  processEnv(): NodeJS.ProcessEnv {
    return process.env;
  }

  async pythonExtensionInterpreter(): Promise<string | undefined> {
    if (!vscode.extensions.getExtension(PYTHON_EXTENSION_ID)) return undefined;
    const { PythonExtension } = await import("@vscode/python-extension");
    const api = await PythonExtension.api();
    const resource = vscode.workspace.workspaceFolders?.[0]?.uri;
    const active = api.environments.getActiveEnvironmentPath(resource);
    const resolved = await api.environments.resolveEnvironment(active);
    return resolved?.executable.uri?.fsPath ?? active.path;
  }

  async onDidChangePythonExtensionInterpreter(listener: () => void): Promise<Disposable> {
    if (!vscode.extensions.getExtension(PYTHON_EXTENSION_ID)) return { dispose: () => undefined };
    const { PythonExtension } = await import("@vscode/python-extension");
    const api = await PythonExtension.api();
    return api.environments.onDidChangeActiveEnvironmentPath(() => listener());
  }

  checkTorch(python: string): Promise<TorchCheck> {
    return new Promise((resolve) => {
      execFile(python, TORCH_CHECK_ARGS, { timeout: TORCH_CHECK_TIMEOUT_MS }, (error, _stdout, stderr) => {
        if (!error) return resolve({ ok: true });
        const code = (error as NodeJS.ErrnoException).code;
        if (code === "ENOENT" || code === "EACCES") {
          return resolve({ ok: false, reason: "no-python", detail: String(code) });
        }
        const lastLine = stderr.trim().split("\n").pop() ?? error.message;
        resolve({ ok: false, reason: "no-torch", detail: lastLine });
      });
    });
  }

  setStatus(view: StatusView): void {
    this.statusItem.text = view.text;
    this.statusItem.tooltip = view.tooltip;
    this.statusItem.command = view.command;
    this.statusItem.backgroundColor =
      view.severity === "error"
        ? new vscode.ThemeColor("statusBarItem.errorBackground")
        : view.severity === "warning"
          ? new vscode.ThemeColor("statusBarItem.warningBackground")
          : undefined;
    this.statusItem.show();
  }

  log(line: string): void {
    this.output.appendLine(line);
  }

  showOutput(): void {
    this.output.show(true);
  }

  showMessage(severity: Severity, text: string, ...actions: string[]): Promise<string | undefined> {
    const show =
      severity === "error"
        ? vscode.window.showErrorMessage
        : severity === "warning"
          ? vscode.window.showWarningMessage
          : vscode.window.showInformationMessage;
    return Promise.resolve(show(text, ...actions));
  }

  executeCommand(command: string, ...args: unknown[]): Promise<unknown> {
    return Promise.resolve(vscode.commands.executeCommand(command, ...args));
  }

  activeEditor(): EditorSnapshot | undefined {
    const editor = vscode.window.activeTextEditor;
    if (!editor) return undefined;
    const doc = editor.document;
    return {
      uri: doc.uri.toString(),
      languageId: doc.languageId,
      lines: doc.getText().split(/\r?\n/),
      cursorLine: editor.selection.active.line,
    };
  }

  async pickModel(models: ModelInfo[]): Promise<ModelInfo | undefined> {
    const picked = await vscode.window.showQuickPick(
      models.map((m) => ({ label: m.name, description: `line ${m.line}`, model: m })),
      { placeHolder: "Model to summarise", title: "paramlens: Show Model Summary" },
    );
    return picked?.model;
  }

  async openSummary(className: string, sourceUri: string, text: string): Promise<void> {
    const uri = vscode.Uri.from({ scheme: SUMMARY_SCHEME, path: summaryPath(className), query: summaryQuery(sourceUri) });
    this.summaries.set(uri, text);
    const doc = await vscode.workspace.openTextDocument(uri);
    await vscode.window.showTextDocument(doc, { preview: false, viewColumn: vscode.ViewColumn.Beside });
  }

  createClient: Host["createClient"] = (launch, handlers) => createLanguageClient(launch, handlers, this.output);

  dispose(): void {
    for (const d of this.registrations.splice(0)) d.dispose();
    this.summaries.dispose();
    this.statusItem.dispose();
    this.output.dispose();
  }
}
