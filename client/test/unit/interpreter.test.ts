import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { choosePython, describeChoice, expandSettingPath, venvPythonCandidates } from "../../src/interpreter";

const none = (): boolean => false;

describe("choosePython", () => {
  it("prefers the paramlens.python setting", () => {
    const choice = choosePython({
      setting: "/usr/bin/python3.11",
      pythonExtension: "/env/bin/python",
      workspaceFolders: ["/ws"],
      isFile: () => true,
      platform: "linux",
    });
    assert.deepEqual(choice, { python: "/usr/bin/python3.11", source: "setting" });
  });

  it("then the Python extension's interpreter", () => {
    const choice = choosePython({ setting: "", pythonExtension: "/env/bin/python", workspaceFolders: ["/ws"], isFile: () => true, platform: "linux" });
    assert.deepEqual(choice, { python: "/env/bin/python", source: "python-extension" });
  });

  it("then .venv, then venv, in the workspace folders", () => {
    const files = new Set(["/ws/venv/bin/python", "/other/.venv/bin/python"]);
    const isFile = (f: string): boolean => files.has(f);
    assert.deepEqual(choosePython({ setting: "  ", workspaceFolders: ["/ws", "/other"], isFile, platform: "linux" }), {
      python: "/ws/venv/bin/python",
      source: "workspace-venv",
    });
    files.add("/ws/.venv/bin/python");
    assert.equal(choosePython({ setting: "", workspaceFolders: ["/ws"], isFile, platform: "linux" }).python, "/ws/.venv/bin/python");
  });

  it("falls back to python3", () => {
    assert.deepEqual(choosePython({ setting: "", workspaceFolders: ["/ws"], isFile: none, platform: "linux" }), {
      python: "python3",
      source: "default",
    });
    assert.deepEqual(choosePython({ setting: "", workspaceFolders: [], isFile: none, pythonExtension: "" }), {
      python: "python3",
      source: "default",
    });
  });

  it("expands variables and relative paths in the setting", () => {
    const choice = choosePython({ setting: "${workspaceFolder}/env/bin/python", workspaceFolders: ["/ws"], isFile: none, platform: "linux" });
    assert.equal(choice.python, "/ws/env/bin/python");
    assert.equal(expandSettingPath("~/py/bin/python", "/ws", "/home/u", "linux"), "/home/u/py/bin/python");
    assert.equal(expandSettingPath("${userHome}/x/python", undefined, "/home/u", "linux"), "/home/u/x/python");
    assert.equal(expandSettingPath("env/bin/python", "/ws", "/home/u", "linux"), "/ws/env/bin/python");
    assert.equal(expandSettingPath("python3.12", "/ws", "/home/u", "linux"), "python3.12");
  });

  it("knows where Windows venvs keep python.exe", () => {
    assert.deepEqual(venvPythonCandidates("C:\\ws", "win32"), ["C:\\ws\\.venv\\Scripts\\python.exe", "C:\\ws\\venv\\Scripts\\python.exe"]);
  });

  it("describes where the choice came from", () => {
    assert.match(describeChoice({ python: "python3", source: "default" }), /python3 \(the default; set paramlens\.python/);
  });
});
