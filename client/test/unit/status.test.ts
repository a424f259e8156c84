import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseStatusNotification, statusView } from "../../src/status";

describe("parseStatusNotification", () => {
  it("reads each state", () => {
    assert.deepEqual(parseStatusNotification({ state: "starting" }), { kind: "starting" });
    assert.deepEqual(parseStatusNotification({ state: "building", model: "NeuralNetwork" }), { kind: "building", model: "NeuralNetwork" });
    assert.deepEqual(parseStatusNotification({ state: "ready", models: 3 }), { kind: "ready", models: 3 });
    assert.deepEqual(parseStatusNotification({ state: "error", message: "boom" }), { kind: "error", message: "boom" });
  });

  it("tolerates missing or wrong optional fields", () => {
    assert.deepEqual(parseStatusNotification({ state: "ready", models: "3" }), { kind: "ready", models: undefined });
    assert.deepEqual(parseStatusNotification({ state: "building" }), { kind: "building", model: undefined });
    assert.deepEqual(parseStatusNotification({ state: "error" }), { kind: "error", message: "paramlens reported an error" });
  });

  it("ignores malformed notifications", () => {
    for (const bad of [undefined, null, 3, "ready", {}, { state: "done" }]) {
      assert.equal(parseStatusNotification(bad), undefined);
    }
  });
});

describe("statusView", () => {
  it("names the model being built", () => {
    const view = statusView({ kind: "building", model: "NeuralNetwork" });
    assert.match(view.text, /NeuralNetwork/);
    assert.equal(view.severity, "normal");
  });

  it("counts ready models", () => {
    assert.match(statusView({ kind: "ready", models: 2 }).text, /paramlens: 2 models$/);
    assert.match(statusView({ kind: "ready", models: 1 }).text, /paramlens: 1 model$/);
    assert.match(statusView({ kind: "ready" }).text, /paramlens$/);
  });

  it("opens the output on an error", () => {
    const view = statusView({ kind: "error", message: "worker crashed" });
    assert.equal(view.command, "paramlens.showOutput");
    assert.equal(view.severity, "error");
    assert.match(view.tooltip, /worker crashed/);
  });

  it("explains Restricted Mode and links to trust management", () => {
    const view = statusView({ kind: "restricted" });
    assert.equal(view.command, "workbench.trust.manage");
    assert.match(view.tooltip, /Restricted Mode/);
    assert.match(view.tooltip, /trust/);
  });

  it("warns about a missing torch", () => {
    const view = statusView({ kind: "noTorch", python: "python3", message: "no torch here" });
    assert.match(view.text, /no torch/);
    assert.equal(view.severity, "warning");
  });
});
