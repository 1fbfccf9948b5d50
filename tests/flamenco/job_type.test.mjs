// The CharacterForge Flamenco job type's compileJob, run with Node's own test runner against
// stubs of the globals a Flamenco Manager gives job types (author, path, frameChunker, print).
// Flamenco itself is not on PyPI, Debian or npm, so its Manager cannot run here.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import nodePath from "node:path";
import vm from "node:vm";

const here = nodePath.dirname(fileURLToPath(import.meta.url));
const source = readFileSync(nodePath.join(here, "..", "..", "blender_scripts", "flamenco", "characterforge_batch.js"), "utf8");

// Flamenco's frame chunker (its Go tests: "1-10,20-25,40" in chunks of 4 -> "1-4", "5-8",
// "9,10,20,21", "22-25", "40"): one run of frames as "A-B", any other chunk frame by frame.
function frameChunker(frames, size) {
    const all = [];
    for (const part of String(frames).split(",")) {
        const [a, b] = part.trim().split(/-|\.\./).map(Number);
        for (let f = a; f <= (Number.isNaN(b) || b === undefined ? a : b); f++) all.push(f);
    }
    const chunks = [];
    for (let i = 0; i < all.length; i += size) {
        const chunk = all.slice(i, i + size);
        const run = chunk.every((f, j) => j === 0 || f === chunk[j - 1] + 1);
        chunks.push(chunk.length === 1 ? `${chunk[0]}` : run ? `${chunk[0]}-${chunk[chunk.length - 1]}` : chunk.join(","));
    }
    return chunks;
}

function compile(settings) {
    const tasks = [];
    const context = {
        author: {
            Task: (name, type) => ({ name, type, commands: [], dependencies: [], addCommand(c) { this.commands.push(c); },
                                     addDependency(t) { this.dependencies.push(t); } }),
            Command: (type, parameters) => ({ type, parameters }),
        },
        path: { join: (...parts) => nodePath.posix.join(...parts) },
        frameChunker,
        print: () => {},
    };
    vm.createContext(context);
    vm.runInContext(source + "\nthis.JOB_TYPE = JOB_TYPE; this.compileJob = compileJob;", context);
    const job = { settings: { chunk_size: 4, ...settings }, addTask: (t) => tasks.push(t) };
    context.compileJob(job);
    return { tasks, jobType: context.JOB_TYPE };
}

const good = { frames: "1-10", batch_file: "/farm/shots/batch.toml", characterforge_root: "/farm/characterforge",
               blendfile: "/farm/shots/scene.blend" };

test("the frames become chunks, each one batch.py task on a Blender worker", () => {
    const { tasks } = compile(good);
    assert.deepEqual(tasks.map((t) => t.name), ["characterforge-1-4", "characterforge-5-8", "characterforge-9-10"]);
    for (const task of tasks) {
        assert.equal(task.type, "blender");
        assert.equal(task.commands.length, 1);
        const { type, parameters } = task.commands[0];
        assert.equal(type, "blender-render");
        assert.equal(parameters.blendfile, "/farm/shots/scene.blend");
        assert.equal(parameters.exe, "{blender}");
        const chunk = task.name.replace("characterforge-", "");
        assert.deepEqual(Array.from(parameters.args), ["--python", "/farm/characterforge/blender_scripts/batch.py", "--",
                                           "--job", "/farm/shots/batch.toml", "--frames", chunk]);
    }
});

test("the stub chunks as Flamenco's own tests say", () => {
    assert.deepEqual(frameChunker("1-10,20-25,40", 4), ["1-4", "5-8", "9,10,20,21", "22-25", "40"]);
    assert.deepEqual(frameChunker("1..10,20..25,40", 4), ["1-4", "5-8", "9,10,20,21", "22-25", "40"]);
});

test("single frames and lists chunk too", () => {
    assert.deepEqual(compile({ ...good, frames: "7" }).tasks.map((t) => t.name), ["characterforge-7"]);
    assert.deepEqual(compile({ ...good, frames: "1-3, 9", chunk_size: 2 }).tasks.map((t) => t.name),
                     ["characterforge-1-2", "characterforge-3,9"]);
});

test("a task run again redoes changed units unless the submitter keeps them", () => {
    // batch.py decides each unit by its fingerprint in the chunk's manifest; the job type only
    // passes the choice to keep changed units on
    const plain = compile(good).tasks[0].commands[0].parameters.args;
    assert.ok(!Array.from(plain).includes("--keep-changed"));
    const kept = compile({ ...good, keep_changed: true }).tasks.map((t) => Array.from(t.commands[0].parameters.args));
    for (const args of kept) {
        assert.deepEqual(args.slice(-3), ["--frames", args[args.length - 2], "--keep-changed"]);
    }
    assert.equal(compile(good).jobType.settings.find((s) => s.key === "keep_changed").default, false);
});

test("bad settings are refused with the reason", () => {
    assert.throws(() => compile({ ...good, batch_file: "/farm/shots/scene.blend" }), /not a batch file/);
    assert.throws(() => compile({ ...good, characterforge_root: "" }), /characterforge_root is empty/);
    assert.throws(() => compile({ ...good, chunk_size: 0 }), /chunk_size 0/);
});

test("the job type declares what the submitter fills in", () => {
    const keys = Array.from(compile(good).jobType.settings, (s) => s.key);  // an array of the job type's realm
    assert.deepEqual(keys, ["frames", "chunk_size", "segment_frames", "carry_frames", "batch_file",
                            "characterforge_root", "keep_changed", "blendfile"]);
});

test("an animated shot chunks by segment, each task after the one before", () => {
    const { tasks } = compile({ ...good, frames: "1-240", segment_frames: 81, carry_frames: 5 });
    // as core/animation_spec.plan_segments: 1-81, then 77-157 (77-81 carried), 153-233, 229-240
    assert.deepEqual(tasks.map((t) => t.name), ["characterforge-1-81", "characterforge-82-157",
                                                "characterforge-158-233", "characterforge-234-240"]);
    assert.deepEqual(tasks.map((t) => t.dependencies.map((d) => d.name)),
                     [[], ["characterforge-1-81"], ["characterforge-82-157"], ["characterforge-158-233"]]);
    assert.deepEqual(compile(good).tasks.map((t) => t.dependencies.length), [0, 0, 0]);  // images: independent
    assert.throws(() => compile({ ...good, frames: "1-10, 20", segment_frames: 9 }), /one run of frames/);
});
