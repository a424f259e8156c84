import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import {
  ATTENTIONS,
  changeNeedsRestart,
  DEFAULT_SETTINGS,
  explicitSettings,
  OPTIMIZERS,
  PRECISIONS,
  readSettings,
  SECTION,
} from "../../src/settings";

const clientDir = path.resolve(__dirname, "..", "..", "..");

describe("readSettings", () => {
  it("gives the defaults when nothing is set", () => {
    const { settings, problems } = readSettings(() => undefined);
    assert.deepEqual(settings, DEFAULT_SETTINGS);
    assert.deepEqual(problems, []);
  });

  it("takes valid values", () => {
    const values: Record<string, unknown> = {
      python: " /opt/py/bin/python ",
      timeout: 3.5,
      memoryMb: 4096,
      device: "cpu",
      layerLenses: false,
      layerHints: true,
      shapes: false,
      inputs: { GPT: "torch.randint(0, 50257, (1, 1024))", "models/unet.py::UNet": "torch.randn(1, 3, 256, 256)" },
      optimizer: "sgd-momentum",
      precision: "bf16-pure",
      batch: 32,
      attention: "math",
      checkpoint: ["Block"],
      loss: "output.loss",
      gpu: "A100-80GB",
      gpus: 8,
      strategy: "zero3",
      wrap: ["Block"],
      analyzeOnSave: false,
      analyzeOnChange: true,
      debounceMs: 0,
      maxFiles: 20000,
    };
    const { settings, problems } = readSettings((k) => values[k]);
    assert.deepEqual(problems, []);
    assert.deepEqual(settings, { ...values, python: "/opt/py/bin/python" });
  });

  it("replaces bad values by defaults and says so", () => {
    const values: Record<string, unknown> = {
      timeout: -1,
      device: "cuda",
      layerLenses: "yes",
      memoryMb: Number.NaN,
      python: 3,
      shapes: "on",
      inputs: { GPT: 1024 },
      optimizer: "lion",
      precision: "int8",
      maxFiles: 0,
      batch: -1,
      attention: "fast",
      checkpoint: ["Block", 3],
      loss: 3,
      gpu: 24,
      gpus: 0,
      strategy: "horovod",
      wrap: 3,
    };
    const { settings, problems } = readSettings((k) => values[k]);
    assert.deepEqual(settings, DEFAULT_SETTINGS);
    assert.equal(problems.length, 18);
    assert.match(problems.join("\n"), /paramlens\.strategy: expected one of ddp, zero1, zero2, zero3, fsdp, got "horovod"; using "ddp"/);
    assert.match(problems.join("\n"), /paramlens\.batch: expected 0 \(the input's own batch\) or a whole number, got -1; using 0/);
    assert.match(problems.join("\n"), /paramlens\.checkpoint: expected a list of module class names, got \["Block",3\]; using \[\]/);
    assert.match(problems.join("\n"), /paramlens\.precision: expected one of fp32, bf16, fp16, bf16-pure, got "int8"; using "fp32"/);
    assert.match(problems.join("\n"), /paramlens\.device: expected "meta" or "cpu", got "cuda"; using "meta"/);
    assert.match(problems.join("\n"), /paramlens\.inputs: expected an object of "Class": "expression" strings, got \{"GPT":1024\}; using \{\}/);
  });

  it("gives each call its own inputs table, never the shared default", () => {
    const first = readSettings(() => undefined).settings;
    first.inputs["Net"] = "torch.randn(1, 3)";
    assert.deepEqual(readSettings(() => undefined).settings.inputs, {});
    assert.deepEqual(DEFAULT_SETTINGS.inputs, {});
  });
});

describe("changeNeedsRestart", () => {
  it("restarts for paramlens.python only", () => {
    assert.equal(changeNeedsRestart((s) => s === "paramlens.python"), true);
    assert.equal(changeNeedsRestart((s) => s === "paramlens.timeout"), false);
    assert.equal(changeNeedsRestart(() => false), false);
  });
});

describe("package.json", () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(clientDir, "package.json"), "utf8"));
  const props: Record<string, { default: unknown; description?: string; markdownDescription?: string; type: string }> =
    pkg.contributes.configuration.properties;

  it("contributes every setting with its default and a description", () => {
    const contributed = Object.keys(props).sort();
    const expected = Object.keys(DEFAULT_SETTINGS).map((k) => `${SECTION}.${k}`).sort();
    assert.deepEqual(contributed, expected);
    for (const [key, value] of Object.entries(DEFAULT_SETTINGS)) {
      const prop = props[`${SECTION}.${key}`];
      assert.ok(prop, key);
      assert.deepEqual(prop.default, value, `default of ${key}`);
      const type = Array.isArray(value) ? "array" : prop.type === "integer" ? "number" : typeof value;
      assert.equal(prop.type === "integer" ? "number" : prop.type, type, `type of ${key}`);
      assert.ok((prop.description ?? prop.markdownDescription ?? "").length > 10, `description of ${key}`);
    }
    assert.deepEqual((props["paramlens.device"] as unknown as { enum: string[] }).enum, ["meta", "cpu"]);
    assert.deepEqual((props["paramlens.optimizer"] as unknown as { enum: string[] }).enum, [...OPTIMIZERS]);
    assert.deepEqual((props["paramlens.precision"] as unknown as { enum: string[] }).enum, [...PRECISIONS]);
    assert.deepEqual((props["paramlens.attention"] as unknown as { enum: string[] }).enum, [...ATTENTIONS]);
    assert.equal(props["paramlens.batch"].type, "integer");
    assert.deepEqual((props["paramlens.inputs"] as unknown as { additionalProperties: object }).additionalProperties, {
      type: "string",
    });
  });

  it("contributes the client commands under their own ids, never a server command id", () => {
    const ids = pkg.contributes.commands.map((c: { command: string }) => c.command).sort();
    assert.deepEqual(ids, ["paramlens.restartServer", "paramlens.showOutput", "paramlens.showSummary"]);
    assert.ok(!ids.includes("paramlens.summary") && !ids.includes("paramlens.models"));
  });

  it("runs in untrusted workspaces only in limited mode and accepts VS Code 1.100", () => {
    assert.equal(pkg.capabilities.untrustedWorkspaces.supported, "limited");
    assert.equal(pkg.engines.vscode, "^1.100.0");
    assert.equal(pkg.main, "./dist/extension.js");
    assert.equal(pkg.license, "MIT");
  });

  it("pins every npm dependency exactly", () => {
    for (const deps of [pkg.dependencies, pkg.devDependencies]) {
      for (const [name, version] of Object.entries(deps as Record<string, string>)) {
        assert.match(version, /^\d+\.\d+\.\d+$/, `${name}@${version}`);
      }
    }
    assert.match(pkg.devDependencies["@types/vscode"], /^1\.100\./);
    assert.match(pkg.dependencies["vscode-languageclient"], /^9\./);
    assert.match(pkg.devDependencies["@vscode/vsce"], /^3\./);
  });
});

describe("explicitSettings", () => {
  it("sends only what the user set, most specific scope first", () => {
    const inspected: Record<string, object> = {
      timeout: { globalValue: 5, workspaceValue: 7 },
      layerLenses: { globalValue: false },
      python: { globalValue: "" },
      device: {},
    };
    assert.deepEqual(explicitSettings((k) => inspected[k]), { timeout: 7, layerLenses: false });
  });

  it("merges inputs across scopes as VS Code merges objects, the folder's entry winning", () => {
    const inspected: Record<string, object> = {
      inputs: {
        globalValue: { GPT: "torch.randint(0, 50257, (1, 1024))", CNN: "torch.randn(1, 1, 28, 28)" },
        workspaceFolderValue: { CNN: "torch.randn(8, 1, 28, 28)" },
      },
      shapes: { workspaceValue: false },
    };
    assert.deepEqual(explicitSettings((k) => inspected[k]), {
      shapes: false,
      inputs: { GPT: "torch.randint(0, 50257, (1, 1024))", CNN: "torch.randn(8, 1, 28, 28)" },
    });
  });

  it("sends a malformed inputs value as it is, for the server to say what is wrong", () => {
    const inspected: Record<string, object> = { inputs: { globalValue: { A: "x" }, workspaceValue: ["x"] } };
    assert.deepEqual(explicitSettings((k) => inspected[k]), { inputs: ["x"] });
  });

  it("sends nothing when nothing is set, so pyproject.toml decides", () => {
    assert.deepEqual(explicitSettings(() => undefined), {});
  });
});
