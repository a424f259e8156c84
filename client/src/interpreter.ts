/**
 * Chooses the Python that runs the server and builds the user's models, in
 * the order of the Python-tools template: the `paramlens.python` setting, then
 * the interpreter selected in the Python extension, then a virtual env in the
 * workspace folder, then `python3`. Pure: file checks are passed in.
 */
import * as path from "node:path";

export type PythonSource = "setting" | "python-extension" | "workspace-venv" | "default";

export interface PythonChoice {
  /** Executable to run: an absolute path, or a name looked up on PATH. */
  python: string;
  source: PythonSource;
}

export interface InterpreterInputs {
  /** The `paramlens.python` setting ("" when unset). */
  setting: string;
  /** Executable of the Python extension's active environment, if any. */
  pythonExtension?: string;
  /** Paths of the workspace folders, first folder first. */
  workspaceFolders: readonly string[];
  /** Whether a file exists (injected for tests). */
  isFile: (file: string) => boolean;
  platform?: NodeJS.Platform;
  homeDir?: string;
}

export const DEFAULT_PYTHON = "python3";

/** `venv` locations looked for in a workspace folder, most common first. */
export function venvPythonCandidates(folder: string, platform: NodeJS.Platform): string[] {
  const p = platform === "win32" ? path.win32 : path.posix;
  const exe = platform === "win32" ? ["Scripts", "python.exe"] : ["bin", "python"];
  return [".venv", "venv"].map((dir) => p.join(folder, dir, ...exe));
}

/**
 * Expands `${workspaceFolder}`, `${userHome}` and a leading `~` in the setting;
 * a relative path containing a separator is taken relative to the first
 * workspace folder. A bare name (`python3.12`) is left for PATH lookup.
 */
export function expandSettingPath(
  setting: string,
  workspaceFolder: string | undefined,
  homeDir: string | undefined,
  platform: NodeJS.Platform,
): string {
  const p = platform === "win32" ? path.win32 : path.posix;
  let value = setting.trim();
  if (workspaceFolder !== undefined) value = value.split("${workspaceFolder}").join(workspaceFolder);
  if (homeDir !== undefined) {
    value = value.split("${userHome}").join(homeDir);
    if (value === "~" || value.startsWith("~/")) value = homeDir + value.slice(1);
  }
  const hasSeparator = value.includes("/") || (platform === "win32" && value.includes("\\"));
  if (hasSeparator && !p.isAbsolute(value) && workspaceFolder !== undefined) {
    value = p.join(workspaceFolder, value);
  }
  return value;
}

export function choosePython(inputs: InterpreterInputs): PythonChoice {
  const platform = inputs.platform ?? process.platform;
  const firstFolder = inputs.workspaceFolders[0];
  if (inputs.setting.trim() !== "") {
    return {
      python: expandSettingPath(inputs.setting, firstFolder, inputs.homeDir, platform),
      source: "setting",
    };
  }
  if (inputs.pythonExtension !== undefined && inputs.pythonExtension.trim() !== "") {
    return { python: inputs.pythonExtension, source: "python-extension" };
  }
  for (const folder of inputs.workspaceFolders) {
    for (const candidate of venvPythonCandidates(folder, platform)) {
      if (inputs.isFile(candidate)) return { python: candidate, source: "workspace-venv" };
    }
  }
  return { python: DEFAULT_PYTHON, source: "default" };
}

export function describeChoice(choice: PythonChoice): string {
  const where: Record<PythonSource, string> = {
    setting: "from the paramlens.python setting",
    "python-extension": "selected in the Python extension",
    "workspace-venv": "the workspace's virtual environment",
    default: "the default; set paramlens.python to choose another",
  };
  return `${choice.python} (${where[choice.source]})`;
}
