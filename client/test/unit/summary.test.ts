import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { modelAtCursor, parseModels, parseSummary, summaryPath, summaryQuery } from "../../src/summary";

const source = `import torch
from torch import nn

class Helper:
    pass

class NeuralNetwork(nn.Module):
    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()

class Other(nn.Module):
    def __init__(self):
        super().__init__()
`.split("\n");

const models = [
  { name: "NeuralNetwork", line: 7 },
  { name: "Other", line: 12 },
];

describe("modelAtCursor", () => {
  it("finds the class the cursor is in", () => {
    assert.equal(modelAtCursor(source, 9, models)?.name, "NeuralNetwork");
    assert.equal(modelAtCursor(source, 6, models)?.name, "NeuralNetwork"); // on the class line
    assert.equal(modelAtCursor(source, 13, models)?.name, "Other");
  });

  it("gives nothing above the first model", () => {
    assert.equal(modelAtCursor(source, 0, models), undefined);
  });

  it("skips classes the server does not know as models", () => {
    assert.equal(modelAtCursor(source, 4, models), undefined); // inside Helper
    assert.equal(modelAtCursor(source, 9, [{ name: "Other", line: 12 }]), undefined);
  });

  it("copes with a cursor past the end", () => {
    assert.equal(modelAtCursor(source, 999, models)?.name, "Other");
  });
});

describe("parseModels", () => {
  it("reads the server's model list", () => {
    assert.deepEqual(parseModels({ models: [{ name: "A", line: 4 }, { name: "B", line: 10 }] }), [
      { name: "A", line: 4 },
      { name: "B", line: 10 },
    ]);
  });

  it("drops malformed entries", () => {
    assert.deepEqual(parseModels({ models: [{ name: "A" }, { name: "", line: 1 }, null, { name: "C", line: 0 }, { name: "D", line: 2 }] }), [
      { name: "D", line: 2 },
    ]);
    assert.deepEqual(parseModels(null), []);
    assert.deepEqual(parseModels({ error: "x" }), []);
  });
});

describe("parseSummary", () => {
  it("reads a summary", () => {
    assert.deepEqual(parseSummary({ text: "Total params: 669,706", model: { name: "N" } }), {
      ok: true,
      text: "Total params: 669,706",
      model: { name: "N" },
    });
  });

  it("reads an error", () => {
    assert.deepEqual(parseSummary({ error: "NameError: x" }), { ok: false, error: "NameError: x" });
    assert.equal(parseSummary(undefined).ok, false);
    assert.equal(parseSummary({}).ok, false);
  });
});

describe("summary tab URIs", () => {
  it("are readable and keep the source document", () => {
    assert.equal(summaryPath("NeuralNetwork"), "/NeuralNetwork summary.txt");
    assert.equal(summaryPath("a/b"), "/a_b summary.txt");
    assert.equal(summaryQuery("file:///w/m.py"), "source=file%3A%2F%2F%2Fw%2Fm.py");
  });
});
