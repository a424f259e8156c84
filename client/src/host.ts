/**
 * The editor and process services the controller needs, as an interface.
 * vscodeHost.ts implements it with `vscode.*`; unit tests implement it with
 * plain objects. Type-only: nothing here runs inside or needs VS Code.
 */
import type { ServerLaunch, TorchCheck } from "./launch";
import type { StatusView } from "./status";
import type { ModelInfo } from "./summary";

export interface Disposable {
  dispose(): void;
}

export type Severity = "info" | "warning" | "error";

export interface EditorSnapshot {
  uri: string;
  languageId: string;
  lines: string[];
  /** 0-based. */
  cursorLine: number;
}

/** The running language server, as the controller sees it. */
export interface ServerClient {
  start(): Promise<void>;
  stop(): Promise<void>;
  executeCommand(command: string, args: unknown[]): Promise<unknown>;
}

export interface ClientHandlers {
  /** A `paramlens/status` notification arrived. */
  onStatus(params: unknown): void;
  /** The user ran the server's summary command (a class lens click) and it returned. */
  onSummaryCommand(args: unknown[], result: unknown): void;
}

export interface Host {
  readonly extensionPath: string;
  isTrusted(): boolean;
  onDidGrantTrust(listener: () => void): Disposable;
  /** A `paramlens.<key>` setting. */
  getSetting(key: string): unknown;
  /** `affects("paramlens.python")` tells whether the change touches that setting. */
  onDidChangeSettings(listener: (affects: (section: string) => boolean) => void): Disposable;
  workspaceFolders(): string[];
  isFile(file: string): boolean;
  homeDir(): string;
  processEnv(): NodeJS.ProcessEnv;
  /** The Python extension's selected interpreter; undefined if it is not installed. */
  pythonExtensionInterpreter(): Promise<string | undefined>;
  onDidChangePythonExtensionInterpreter(listener: () => void): Promise<Disposable>;
  checkTorch(python: string): Promise<TorchCheck>;
  setStatus(view: StatusView): void;
  log(line: string): void;
  showOutput(): void;
  showMessage(severity: Severity, text: string, ...actions: string[]): Promise<string | undefined>;
  executeCommand(command: string, ...args: unknown[]): Promise<unknown>;
  activeEditor(): EditorSnapshot | undefined;
  pickModel(models: ModelInfo[]): Promise<ModelInfo | undefined>;
  openSummary(className: string, sourceUri: string, text: string): Promise<void>;
  createClient(launch: ServerLaunch, handlers: ClientHandlers): ServerClient;
}
